//! `raftkv token`: a new client token, its hash added to a configuration;
//! `raftkv certs`: a development CA and node certificates, TLS turned on.

use std::path::Path;
use std::process::ExitCode;

use raftkv::auth::{hex, new_token, token_hash, Role};
use raftkv::Config;

/// Draws a token for `name` with `role`, prints it on stdout (the only place
/// it ever appears), and appends its `[[tokens]]` entry — the hash only — to
/// the configuration at `config` (or prints the entry when there is none).
pub fn token(name: &str, role: Role, config: Option<&Path>) -> Result<ExitCode, String> {
    let token = new_token()?;
    let block = format!(
        "\n[[tokens]]\nname = \"{}\"\nrole = \"{}\"\nsha256 = \"{}\"\n",
        name.replace('\\', "\\\\").replace('"', "\\\""),
        role.as_str(),
        hex(&token_hash(&token))
    );
    match config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let new_text = format!("{}{block}", text.trim_end_matches('\n').to_string() + "\n");
            Config::parse(&new_text).map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::write(path, new_text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!(
                "added token {name:?} (role {}) to {}; keep the token below, it is not stored",
                role.as_str(),
                path.display()
            );
        }
        None => eprintln!("add this to the cluster's configuration (the token itself is on stdout):{block}"),
    }
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// `raftkv certs`: a development CA and a certificate per node of the
/// configuration at `config` (the embedded default when the file does not
/// exist yet) into `dir`; then the configuration is written back with `[tls]`
/// pointing there and every node's URL `wss://`.
pub fn certs(dir: &Path, config: &Path) -> Result<ExitCode, String> {
    let mut cfg =
        if config.exists() { Config::load(Some(config)).map_err(|e| e.to_string())? } else { Config::default_local() };
    for n in &mut cfg.nodes {
        let url = n.url();
        n.url = Some(match url.strip_prefix("ws://") {
            Some(rest) => format!("wss://{rest}"),
            None => url,
        });
    }
    let written = raftkv::tls::write_dev_certs(&cfg, dir)?;
    // Absolute, so `raftkv cluster` (which copies the file) and nodes started elsewhere find them.
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    cfg.tls = Some(raftkv::config::TlsConfig { ca: dir.join("ca.pem"), dir: dir.clone() });
    cfg.validate().map_err(|e| e.to_string())?;
    std::fs::write(config, cfg.to_toml()).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    for w in written {
        eprintln!("wrote {w}");
    }
    eprintln!("{}: TLS on ([tls] ca and dir), node URLs wss://; keep ca-key.pem away from the nodes", config.display());
    Ok(ExitCode::SUCCESS)
}
