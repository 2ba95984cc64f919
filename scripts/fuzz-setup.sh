# Sourced by scripts/fuzz-check and scripts/fuzz: cargo-fuzz installed into
# the repository's target directory (so a clean clone gets it with nothing
# installed by hand), and the targets built with libFuzzer's coverage
# instrumentation and AddressSanitizer on the stable toolchain.
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer, -Cllvm-args for
# sanitizer coverage); RUSTC_BOOTSTRAP=1 makes the stable compiler accept
# them, so the targets are built by the same compiler as everything else.

cargo_fuzz_version=0.13.2
fuzz_tools=target/tools
fuzz_target_dir=target/fuzz
fuzz_triple=$(rustc -vV | sed -n 's/^host: //p')
fuzz_bin_dir=$fuzz_target_dir/$fuzz_triple/release
export RUSTC_BOOTSTRAP=1

# Installs the pinned cargo-fuzz unless that version is already there.
fuzz_install() {
  if [ "$("$fuzz_tools/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    cargo install cargo-fuzz --locked --quiet --version "$cargo_fuzz_version" --root "$fuzz_tools"
  fi
}

# The target names, from fuzz/Cargo.toml.
fuzz_targets() {
  "$fuzz_tools/bin/cargo-fuzz" list --fuzz-dir fuzz
}

# Builds the targets named (all of them when none is).
fuzz_build() {
  if [ "$#" -eq 0 ]; then
    "$fuzz_tools/bin/cargo-fuzz" build --fuzz-dir fuzz --target-dir "$fuzz_target_dir"
  else
    for target in "$@"; do
      "$fuzz_tools/bin/cargo-fuzz" build --fuzz-dir fuzz --target-dir "$fuzz_target_dir" "$target"
    done
  fi
}
