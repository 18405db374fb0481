//! The options every command that talks to a cluster takes: where the nodes
//! are, and how long to wait.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use raftkv::{Client, ClientOptions, Config};

/// `--config`, `--addr`, `--timeout`, `--token`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// Cluster configuration to take node addresses from (default: the embedded one).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Node URL(s), e.g. ws://127.0.0.1:7001 (repeat or separate with commas); overrides --config.
    #[arg(long, value_delimiter = ',')]
    pub addr: Vec<String>,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Bearer token for a cluster with client authentication (see `raftkv token`).
    #[arg(long, env = "RAFTKV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster's CA certificate (PEM) for wss:// nodes (default: [tls] ca of --config).
    #[arg(long, env = "RAFTKV_CA")]
    pub ca: Option<PathBuf>,
}

impl ClientArgs {
    /// The node URLs: `--addr`, or those of the configuration.
    pub fn addrs(&self) -> Result<Vec<String>, String> {
        if !self.addr.is_empty() {
            return Ok(self.addr.clone());
        }
        Ok(Config::load(self.config.as_deref()).map_err(|e| e.to_string())?.client_urls())
    }

    /// The TLS client configuration: `--ca`, or the `[tls]` CA of the
    /// configuration, or none.
    pub fn tls(&self) -> Result<Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>, String> {
        let ca = match &self.ca {
            Some(p) => Some(p.clone()),
            None if self.addr.is_empty() || self.config.is_some() => {
                Config::load(self.config.as_deref()).map_err(|e| e.to_string())?.tls.map(|t| t.ca)
            }
            None => None,
        };
        ca.map(|p| raftkv::tls::client_config(&p)).transpose()
    }

    /// Client options with `--timeout` as the budget of each call.
    pub fn options(&self) -> Result<ClientOptions, String> {
        // (A day bounds it so Duration::from_secs_f64 cannot overflow.)
        if !(self.timeout > 0.0 && self.timeout < 86_400.0) {
            return Err("--timeout must be a positive number of seconds".into());
        }
        Ok(ClientOptions {
            timeout: Duration::from_secs_f64(self.timeout),
            token: self.token.clone(),
            tls: self.tls()?,
            ..ClientOptions::default()
        })
    }

    /// A client of the cluster.
    pub fn client(&self) -> Result<Client, String> {
        Ok(Client::new(self.addrs()?, self.options()?))
    }
}
