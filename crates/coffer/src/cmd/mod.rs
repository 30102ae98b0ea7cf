//! One module per subcommand: its clap `Args` and a `run` function.

pub mod audit;
pub mod kms_plugin;
pub mod rotate;
pub mod run;
pub mod scan;
pub mod secret;
pub mod serve;
pub mod storage;
pub mod sync;
