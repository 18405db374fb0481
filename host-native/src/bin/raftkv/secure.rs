//! `raftkv token`: a new client token, its hash added to a configuration.

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
