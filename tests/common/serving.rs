//! Any hostlab server started ready for traffic: a model with a process
//! policy (a front) starts its app at once and opens its admin endpoint.
//! Declared with `#[path]` by the security test crates.

use hostlab_hosts::Model;

use super::common::Server;

/// `hostlab serve MODEL EXTRA...`; a front also gets `--start-mode
/// always-running --admin 127.0.0.1:0`.
pub(crate) fn start(model: &str, extra: &[&str]) -> Server {
    let mut args = extra.to_vec();
    if model.parse().is_ok_and(Model::has_policy) {
        args.extend(["--start-mode", "always-running", "--admin", "127.0.0.1:0"]);
    }
    Server::start(model, &args)
}
