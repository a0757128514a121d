//! Where a configuration's values come from (the process environment and
//! `.env`) and how each was read, for `updown config --explain`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    /// The `.env` file.
    DotEnv,
    /// The process environment (which wins over `.env`).
    Environment,
    /// A secret's file, named by `NAME_FILE` (in either of the above).
    File,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::DotEnv => ".env",
            Source::Environment => "environment",
            Source::File => "file (NAME_FILE)",
        })
    }
}

/// One variable as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub variable: &'static str,
    pub source: Source,
    /// The text read (a default's spelling for a default), [`REDACTED`]
    /// for a secret; `None` when unset.
    pub value: Option<String>,
    /// Why the value is not used, when it is not (e.g. a variable of the
    /// http oracle while ORACLE=csv).
    pub unused: Option<&'static str>,
}

/// The variables a configuration is read from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    pub environment: HashMap<String, String>,
    pub dotenv: HashMap<String, String>,
    /// The `.env` file read, if one was found.
    pub dotenv_path: Option<PathBuf>,
    /// Why reading `.env` stopped early (its lines before were kept).
    pub dotenv_problem: Option<String>,
}

impl Sources {
    /// The process environment and the first `.env` found from the
    /// current directory up, as `dotenvy::dotenv` finds it. `.env` is read
    /// beside the environment rather than loaded into it, so each value's
    /// source stays known; as before, the environment wins.
    pub fn of_process() -> Sources {
        let mut sources = Sources {
            environment: std::env::vars().collect(),
            ..Sources::default()
        };
        let Some(path) = find_dotenv() else {
            return sources;
        };
        match dotenvy::from_path_iter(&path) {
            // A malformed line stops the reading there, as `dotenv()` did.
            Ok(lines) => {
                for line in lines {
                    match line {
                        Ok((name, value)) => {
                            sources.dotenv.insert(name, value);
                        }
                        Err(error) => {
                            sources.dotenv_problem = Some(error.to_string());
                            break;
                        }
                    }
                }
            }
            Err(error) => sources.dotenv_problem = Some(error.to_string()),
        }
        sources.dotenv_path = Some(path);
        sources
    }

    /// Variables given directly (tests and the demo), as the environment.
    pub fn of_vars(vars: &HashMap<String, String>) -> Sources {
        Sources {
            environment: vars.clone(),
            ..Sources::default()
        }
    }
}

/// `.env` in the current directory or the nearest parent that has one.
fn find_dotenv() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors()
        .map(|folder| folder.join(".env"))
        .find(|candidate| candidate.is_file())
}
