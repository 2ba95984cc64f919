//! Capture filters (`tcp port 8080`), compiled by libpcap, loaded when a
//! filter is given rather than linked: the build needs no libpcap headers
//! or library, and a machine without libpcap captures everything but
//! cannot filter in the kernel (it is told what to install).
//!
//! libpcap's compiler is the reference for tcpdump's and Wireshark's
//! capture filter syntax; writing another would be a second dialect.
//! `pcap_compile` on a "dead" handle (a link type and a snap length, no
//! device) gives a classic BPF program whose instructions have the layout
//! of the kernel's `sock_filter`, ready for `SO_ATTACH_FILTER`.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};

use anyhow::{anyhow, bail};

/// The names libpcap's shared library goes by: the soname of libpcap 1.x,
/// Debian's (libpcap0.8), and the development link.
const LIBRARY_NAMES: [&str; 3] = ["libpcap.so.1", "libpcap.so.0.8", "libpcap.so"];

/// `PCAP_NETMASK_UNKNOWN`: `ip broadcast` cannot be compiled, all else can.
const NETMASK_UNKNOWN: u32 = 0xffff_ffff;

/// `struct bpf_program`.
#[repr(C)]
struct BpfProgram {
    len: c_uint,
    instructions: *mut libc::sock_filter,
}

type OpenDead = unsafe extern "C" fn(linktype: c_int, snaplen: c_int) -> *mut c_void;
type Compile = unsafe extern "C" fn(
    pcap: *mut c_void,
    program: *mut BpfProgram,
    expression: *const c_char,
    optimize: c_int,
    netmask: u32,
) -> c_int;
type GetErr = unsafe extern "C" fn(pcap: *mut c_void) -> *mut c_char;
type FreeCode = unsafe extern "C" fn(program: *mut BpfProgram);
type Close = unsafe extern "C" fn(pcap: *mut c_void);

/// Compiles `expression` for packets of link type `dlt` (a DLT_ value)
/// cut to `snaplen`: the kernel keeps that many bytes of a packet that
/// passes.
pub fn compile(dlt: i32, snaplen: u32, expression: &str) -> anyhow::Result<Vec<libc::sock_filter>> {
    let text =
        CString::new(expression).map_err(|_| anyhow!("the capture filter contains a NUL byte"))?;
    let library = load()?;
    // SAFETY: the symbols are libpcap's documented functions with these
    // signatures (pcap/pcap.h), unchanged since libpcap 0.8; they live as
    // long as `library`, which outlives every call below.
    unsafe {
        let open_dead = symbol::<OpenDead>(&library, "pcap_open_dead")?;
        let compile = symbol::<Compile>(&library, "pcap_compile")?;
        let get_err = symbol::<GetErr>(&library, "pcap_geterr")?;
        let free_code = symbol::<FreeCode>(&library, "pcap_freecode")?;
        let close = symbol::<Close>(&library, "pcap_close")?;
        let pcap = open_dead(dlt, snaplen.min(i32::MAX as u32) as c_int);
        if pcap.is_null() {
            bail!("libpcap could not set up a filter compiler for link type {dlt}");
        }
        let mut program = BpfProgram {
            len: 0,
            instructions: std::ptr::null_mut(),
        };
        let result = if compile(pcap, &mut program, text.as_ptr(), 1, NETMASK_UNKNOWN) < 0 {
            let message = get_err(pcap);
            let message = if message.is_null() {
                "libpcap gave no reason".to_owned()
            } else {
                CStr::from_ptr(message).to_string_lossy().into_owned()
            };
            Err(anyhow!(
                "the capture filter {expression:?} does not compile: {message} (the syntax is \
                 tcpdump's: see `man pcap-filter`)"
            ))
        } else {
            let instructions = if program.instructions.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(program.instructions, program.len as usize).to_vec()
            };
            free_code(&mut program);
            Ok(instructions)
        };
        close(pcap);
        result
    }
}

/// libpcap, or what to install.
fn load() -> anyhow::Result<libloading::Library> {
    let mut failures = Vec::new();
    for name in LIBRARY_NAMES {
        // SAFETY: loading libpcap runs no initialisers with preconditions.
        match unsafe { libloading::Library::new(name) } {
            Ok(library) => return Ok(library),
            Err(err) => failures.push(err.to_string()),
        }
    }
    tracing::debug!("libpcap not loaded: {}", failures.join("; "));
    bail!(
        "a capture filter needs libpcap, which is not installed here (looked for {}): install it \
         (Debian and Ubuntu: apt-get install libpcap0.8; Fedora: dnf install libpcap), or capture \
         without a filter",
        LIBRARY_NAMES.join(", ")
    )
}

/// One function out of libpcap.
///
/// SAFETY: `T` must be the function's true type.
unsafe fn symbol<T: Copy>(library: &libloading::Library, name: &str) -> anyhow::Result<T> {
    // SAFETY: the caller promises the type.
    unsafe { library.get::<T>(name) }
        .map(|symbol| *symbol)
        .map_err(|err| anyhow!("the libpcap found has no {name}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_compiles_to_kernel_instructions() {
        let program = compile(1, 262_144, "tcp port 8080").expect("libpcap is installed");
        // Ethernet: the first thing looked at is the EtherType, at 12
        // (BPF_LD | BPF_H | BPF_ABS); a match keeps the snap length.
        assert_eq!((program[0].code, program[0].k), (0x28, 12));
        assert!(program.iter().any(|i| i.code == 0x06 && i.k == 262_144));
        assert!(program.iter().any(|i| i.k == 8080));
    }

    #[test]
    fn a_bad_filter_is_refused_with_libpcaps_reason() {
        let err = compile(1, 262_144, "tcp port").unwrap_err().to_string();
        assert!(
            err.starts_with("the capture filter \"tcp port\" does not compile: "),
            "{err}"
        );
        assert!(err.contains("syntax error"), "{err}");
    }
}
