//! The interception CA on disk: its key private from the first byte (also
//! when it replaces a file), refused when others can read it, and one CA
//! however many first runs race to make it (checked with openssl, which
//! nobody here wrote).

mod common;

use common::TimedOutput;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{output_within, temp_dir, wscope};

fn ca_files(data: &Path) -> (PathBuf, PathBuf) {
    let dir = data.join("wscope/ca");
    (dir.join("wscope-ca.pem"), dir.join("wscope-ca-key.pem"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn ca(data: &Path, args: &[&str]) -> std::process::Output {
    output_within(
        wscope().arg("ca").args(args).env("XDG_DATA_HOME", data),
        Duration::from_secs(60),
    )
}

/// The public key (PEM) of a certificate or of a private key, by openssl.
fn public_key(kind: &str, path: &Path) -> String {
    let openssl = common::system_tool("openssl", "openssl");
    let args: &[&str] = if kind == "cert" {
        &["x509", "-pubkey", "-noout", "-in"]
    } else {
        &["pkey", "-pubout", "-in"]
    };
    let out = Command::new(openssl)
        .args(args)
        .arg(path)
        .timed_output()
        .unwrap();
    assert!(out.status.success(), "openssl {kind}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_key_is_private_when_made_and_when_replaced_and_refused_when_not() {
    let data = temp_dir("ca-modes");
    let (cert, key) = ca_files(&data);
    assert!(ca(&data, &[]).status.success());
    assert_eq!(mode(&key), 0o600);
    assert_eq!(public_key("cert", &cert), public_key("key", &key));

    // A key others can read is refused, with the fix named.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ca(&data, &[]);
    // 1 is an error wscope reported; a panic would be 101.
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("chmod 600 {}", key.display())),
        "{stderr}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(ca(&data, &[]).status.success());

    // A lone key file that others could read (the certificate is gone) is
    // replaced: the new key is 0600 all the same.
    std::fs::remove_file(&cert).unwrap();
    std::fs::write(&key, "not a key").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ca(&data, &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("created"));
    assert_eq!(mode(&key), 0o600);
    assert_eq!(public_key("cert", &cert), public_key("key", &key));
    let leftovers: Vec<_> = std::fs::read_dir(key.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn first_runs_at_once_make_one_matching_pair() {
    for round in 0..3 {
        let data = temp_dir(&format!("ca-race-{round}"));
        let (cert, key) = ca_files(&data);
        let runs: Vec<_> = (0..6)
            .map(|_| {
                let data = data.clone();
                std::thread::spawn(move || ca(&data, &["--pem"]))
            })
            .collect();
        let printed: Vec<String> = runs
            .into_iter()
            .map(|run| {
                let out = run.join().unwrap();
                assert!(out.status.success(), "{out:?}");
                String::from_utf8(out.stdout).unwrap()
            })
            .collect();
        // Every run used the one certificate that stayed on disk, and its
        // key is the key beside it.
        let on_disk = std::fs::read_to_string(&cert).unwrap();
        for pem in &printed {
            assert_eq!(pem, &on_disk, "round {round}");
        }
        assert_eq!(public_key("cert", &cert), public_key("key", &key));
    }
}
