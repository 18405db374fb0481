//! The node-level test harness: scripts of inputs to a few `Raft` nodes,
//! checked against the transcript of everything the nodes did (see
//! `tests/node.rs` for the commands and `script.rs` for the file format).

pub mod env;
pub mod script;
pub mod text;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use env::Env;
use script::Script;

/// Where the scripts live.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("scripts")
}

/// Whether `REWRITE` asks for expected outputs to be regenerated.
pub fn rewrite_requested() -> bool {
    std::env::var("REWRITE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// What running a script produced.
pub struct Run {
    /// The output of every case, in order.
    pub actual: Vec<Vec<String>>,
    /// A report for each case whose output differs from the expected one.
    pub mismatches: Vec<String>,
}

/// Runs every case of `script` (called `name` in reports) against a fresh
/// environment. An `Err` is a command that could not run — a mistake in the
/// script (an unknown command, a bad argument) or the engine breaking the
/// host contract — named by file and line; it fails even under `REWRITE`.
pub fn run(name: &str, script: &Script) -> Result<Run, String> {
    let mut env = Env::new();
    let mut run = Run { actual: Vec::new(), mismatches: Vec::new() };
    for case in script.cases() {
        // An engine panic (a debug assertion) should say which command did it;
        // the panic's own message has already been printed by then.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| env.run(&case.command)));
        let Ok(ran) = ran else {
            panic!("{name}:{}: `{}` panicked (see the message above)", case.line, case.command);
        };
        let out = ran.map_err(|e| format!("{name}:{}: `{}`: {e}", case.line, case.command))?;
        match &case.expected {
            Some(exp) if *exp == out => {}
            Some(exp) => {
                let mut r = format!(
                    "{name}:{}: `{}` printed something else (- expected, + actual):\n",
                    case.line, case.command
                );
                r.push_str(&script::diff(exp, &out));
                run.mismatches.push(r);
            }
            None => {
                let mut r =
                    format!("{name}:{}: `{}` has no expected output yet; it printed:\n", case.line, case.command);
                for l in &out {
                    let _ = writeln!(r, "+ {l}");
                }
                run.mismatches.push(r);
            }
        }
        run.actual.push(out);
    }
    Ok(run)
}

/// Checks the script file at `path`. With `rewrite`, writes the actual
/// outputs into it instead (only if they differ) and succeeds; the change is
/// then reviewed as a diff.
pub fn check_file(path: &Path, rewrite: bool) -> Result<(), String> {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let src = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let script = Script::parse(&src).map_err(|e| format!("{name}: {e}"))?;
    let run = run(&name, &script)?;
    if rewrite {
        let new = script.render(&run.actual);
        if new != src {
            std::fs::write(path, new).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
        return Ok(());
    }
    if run.mismatches.is_empty() {
        return Ok(());
    }
    let mut report = run.mismatches.join("\n");
    let _ = write!(report, "\n{} case(s) differ; if the change is intended, regenerate with\n  REWRITE=1 cargo test -p raft-core --test node\nand review the diff.", run.mismatches.len());
    Err(report)
}

/// Runs `tests/scripts/<name>.txt` (rewriting it under `REWRITE=1`).
pub fn run_script(name: &str) {
    let path = scripts_dir().join(format!("{name}.txt"));
    if let Err(report) = check_file(&path, rewrite_requested()) {
        panic!("{report}");
    }
}
