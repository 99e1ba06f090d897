//! The command line: the full run's options, and the two modes the benchmark runs itself in.

use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// What the authenticated connection costs against raw redis-rs, redis-rs's own `entra-id`
/// provider and redis-server's ceiling: throughput, latency, cold start and memory.
#[derive(Debug, Parser)]
#[command(name = "bench", version, args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) mode: Option<Mode>,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The full run's options.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Runs per cell; each cell is their median.
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = runs)]
    pub(crate) runs: u64,

    /// Seconds per run of a throughput cell (latency runs ten times as long, at least 5 s).
    #[arg(
        long,
        value_name = "S",
        default_value_t = 1.0,
        value_parser = seconds,
        // So that `--seconds -1` is refused as a value, not taken for a flag.
        allow_negative_numbers = true
    )]
    pub(crate) seconds: f64,

    /// The redis-rs `entra-id` comparison program (anchors/redis-rs-entra), built on its own.
    #[arg(long, value_name = "PATH")]
    pub(crate) anchor: Option<String>,
}

/// The modes other than the full run.
#[derive(Debug, Subcommand)]
pub(crate) enum Mode {
    /// Issue N SETs through one client against a redis-server of its own, on a single-threaded
    /// runtime, for an instruction count under `valgrind --tool=callgrind`.
    Count {
        /// The client that sends them.
        client: Client,
        /// How many SETs.
        n: u64,
        /// How many of them in flight at a time.
        #[arg(default_value_t = 1)]
        depth: usize,
    },
    /// Cold start, run by the full run as a child process with Service Connector's variables.
    #[command(name = crate::cold_start::CHILD_COMMAND, hide = true)]
    ColdStartChild,
}

/// The client `count` measures.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Client {
    /// Raw redis-rs configured as the handle's (the baseline).
    Raw,
    /// Our handle, with a minted token.
    Ours,
}

/// A number of runs: at least one, for a median.
fn runs(value: &str) -> Result<u64, String> {
    match value.parse::<u64>().map_err(|e| e.to_string())? {
        0 => Err("expected at least 1 run".to_owned()),
        runs => Ok(runs),
    }
}

/// A number of seconds that every measurement can turn into a `Duration` (latency runs ten
/// times as long as a throughput cell).
fn seconds(value: &str) -> Result<f64, String> {
    let seconds: f64 = value
        .parse()
        .map_err(|e: std::num::ParseFloatError| e.to_string())?;
    if seconds > 0.0 && Duration::try_from_secs_f64(seconds * 10.0).is_ok() {
        Ok(seconds)
    } else {
        Err(format!(
            "expected a positive number of seconds, not {value}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Args, Client, Mode};

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn the_full_run_takes_its_options_in_any_order() {
        let args =
            Args::try_parse_from(["bench", "--anchor", "a", "--seconds", "0.5", "--runs", "3"])
                .unwrap();
        assert!(args.mode.is_none());
        assert_eq!((args.run.runs, args.run.seconds), (3, 0.5));
        assert_eq!(args.run.anchor.as_deref(), Some("a"));
        let defaults = Args::try_parse_from(["bench"]).unwrap();
        assert_eq!((defaults.run.runs, defaults.run.seconds), (7, 1.0));
    }

    #[test]
    fn count_takes_a_client_a_number_and_an_optional_depth() {
        let args = Args::try_parse_from(["bench", "count", "ours", "200", "4"]).unwrap();
        assert!(matches!(
            args.mode,
            Some(Mode::Count {
                client: Client::Ours,
                n: 200,
                depth: 4
            })
        ));
        let args = Args::try_parse_from(["bench", "count", "raw", "2000"]).unwrap();
        assert!(matches!(
            args.mode,
            Some(Mode::Count {
                client: Client::Raw,
                n: 2000,
                depth: 1
            })
        ));
    }

    #[test]
    fn the_cold_start_child_is_a_subcommand() {
        let args = Args::try_parse_from(["bench", crate::cold_start::CHILD_COMMAND]).unwrap();
        assert!(matches!(args.mode, Some(Mode::ColdStartChild)));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for argv in [
            &["bench", "--runs", "x"][..],
            &["bench", "--runs", "0"],
            &["bench", "--seconds", "-1"],
            &["bench", "--seconds", "nan"],
            &["bench", "--seconds", "1e300"],
            &["bench", "--anchor"],
            &["bench", "--unknown"],
            &["bench", "count", "other", "10"],
            &["bench", "count", "ours", "many"],
            &["bench", "count", "ours"],
            &["bench", "--runs", "3", "count", "ours", "10"],
        ] {
            assert!(Args::try_parse_from(argv).is_err(), "{argv:?} was accepted");
        }
    }
}
