//! `--color auto|always|never`, decided once for the whole process. `auto`
//! colours a stream only when it is a terminal and `NO_COLOR` is unset;
//! `always` and `never` override both (as no-color.org asks of a flag).

use std::io::IsTerminal;
use std::sync::OnceLock;

/// `--color`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Sets the choice for this process; the first call wins.
pub fn init(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

/// Whether output to a stream that `is_terminal` (or not) gets colours.
pub fn enabled(is_terminal: bool) -> bool {
    match CHOICE.get().copied().unwrap_or_default() {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// Whether stdout gets colours.
pub fn stdout() -> bool {
    enabled(std::io::stdout().is_terminal())
}
