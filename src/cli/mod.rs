//! The subcommands behind `pgforce`. Part of the binary, not the library: this is the one
//! place `anyhow` is used. Exit codes: 0 success, 1 runtime failure, 2 bad config or usage,
//! 3 `validate` found errors. `emulator` and `demo` exist only with the `embedded-emulator`
//! feature (on by default; production builds use `--no-default-features`).

#[cfg(feature = "embedded-emulator")]
pub mod demo;
#[cfg(feature = "embedded-emulator")]
pub mod emulator;
pub mod errors;
pub mod inbound;
pub mod jobs;
pub mod progress;
pub mod replay;
pub mod run;
pub mod schema;
pub mod status;
pub mod validate;

use std::path::Path;
use std::process::ExitCode;

use pgforce::config::{Config, ConfigError, PipelineConfig};

/// Exit code for a configuration the user must fix.
pub const EXIT_CONFIG: u8 = 2;

/// Load the config, printing every problem with its key and line.
pub fn load_config(path: &Path) -> Result<Config, ExitCode> {
    match Config::load(path) {
        Ok(c) => Ok(c),
        Err(e) => {
            print_config_error(path, &e);
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn print_config_error(path: &Path, e: &ConfigError) {
    match e {
        ConfigError::Invalid(errors) => {
            eprintln!("error: {} has {} problem(s):", path.display(), errors.len());
            for k in errors {
                eprintln!("  {k}");
            }
        }
        other => eprintln!("error: {other}"),
    }
}

/// The named pipeline, or the only one.
pub fn pick_pipeline<'a>(
    config: &'a Config,
    name: Option<&str>,
) -> Result<&'a PipelineConfig, ExitCode> {
    let found = match name {
        Some(n) => config.pipelines.iter().find(|p| p.name == n),
        None if config.pipelines.len() == 1 => config.pipelines.first(),
        None => {
            eprintln!("error: the config has several pipelines; choose one with --pipeline");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    found.ok_or_else(|| {
        eprintln!(
            "error: no pipeline named {:?} in the config",
            name.unwrap_or_default()
        );
        ExitCode::from(EXIT_CONFIG)
    })
}
