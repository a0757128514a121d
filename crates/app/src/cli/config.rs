//! `updown config`: the configuration as read, secrets redacted; with
//! `--explain`, where each value came from (default, `.env`, the
//! environment) and the settings left unset or unused.

use serde::Serialize;

use super::output::Printer;
use crate::config::{Explanation, Setting};

/// One setting as printed (`--json`).
#[derive(Serialize)]
struct SettingOut<'a> {
    variable: &'a str,
    source: String,
    /// `null` when unset.
    value: Option<&'a str>,
    /// Why it does not apply, when it does not.
    unused: Option<&'a str>,
}

#[derive(Serialize)]
struct ExplanationOut<'a> {
    /// The `.env` file read, if one was found.
    dotenv: Option<String>,
    dotenv_problem: Option<&'a str>,
    settings: Vec<SettingOut<'a>>,
}

/// Prints `explanation`: every setting with its source when `explain`,
/// else the settings that have a value as `VARIABLE=value` lines.
pub fn print(explanation: &Explanation, explain: bool, out: &Printer) {
    if explain {
        print_explained(explanation, out);
        return;
    }
    let set: Vec<&Setting> = explanation
        .settings
        .iter()
        .filter(|s| s.value.is_some() && s.unused.is_none())
        .collect();
    let values: serde_json::Map<String, serde_json::Value> = set
        .iter()
        .map(|s| (s.variable.to_string(), s.value.clone().into()))
        .collect();
    out.print(&values, || {
        set.iter()
            .map(|s| format!("{}={}", s.variable, s.value.as_deref().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("\n")
    });
}

fn print_explained(explanation: &Explanation, out: &Printer) {
    let view = ExplanationOut {
        dotenv: explanation
            .dotenv_path
            .as_ref()
            .map(|path| path.display().to_string()),
        dotenv_problem: explanation.dotenv_problem.as_deref(),
        settings: explanation
            .settings
            .iter()
            .map(|s| SettingOut {
                variable: s.variable,
                source: s.source.to_string(),
                value: s.value.as_deref(),
                unused: s.unused,
            })
            .collect(),
    };
    out.print(&view, || {
        let width = view
            .settings
            .iter()
            .map(|s| s.variable.len())
            .max()
            .unwrap_or(0);
        let mut lines = vec![match (&view.dotenv, view.dotenv_problem) {
            (None, _) => "no .env file found (from here up)".to_string(),
            (Some(path), None) => format!(".env: {path}"),
            (Some(path), Some(problem)) => {
                format!(".env: {path} (read up to a bad line: {problem})")
            }
        }];
        lines.push(format!("{:width$}  {:11}  value", "variable", "source"));
        for s in &view.settings {
            let mut line = format!(
                "{:width$}  {:11}  {}",
                s.variable,
                s.source,
                s.value.unwrap_or("(unset)")
            );
            if let Some(why) = s.unused {
                line.push_str(&format!("  (not used: {why})"));
            }
            lines.push(line);
        }
        lines.join("\n")
    });
}
