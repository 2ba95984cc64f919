//! Arbitrary text as an `--on-open` script: parsed into steps or refused
//! with a line inside the script, never a panic; a parsed script runs
//! through the step runner to its end.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wscope::commands::opening::{Runner, Step, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Err(err) => assert!(err.line >= 1 && err.line <= text.lines().count(), "{err}"),
        Ok(steps) => {
            assert!(steps.len() <= text.lines().count());
            let mut runner = Runner::new(&steps);
            let mut handed = 0;
            loop {
                while runner.next_send(Duration::ZERO).is_some() {
                    handed += 1;
                }
                if runner.done() {
                    break;
                }
                if runner.expecting().is_some() {
                    runner.matched();
                } else {
                    assert_eq!(runner.timed_out(), Ok(()));
                }
            }
            let sends = steps
                .iter()
                .filter(|s| matches!(s, Step::Send { .. }))
                .count();
            assert_eq!(handed, sends);
        }
    }
});
