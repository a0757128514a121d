//! The reader every part of the configuration parses itself with: typed
//! getters over `.env` and the process environment ([`Sources`]), each
//! failing with an error that names its variable, and each noting where
//! its value came from so `updown config --explain` can say it.

use std::fmt;
use std::ops::RangeInclusive;

use updown_domain::Micros;

use super::sources::{Setting, Source, Sources};
use crate::secret::Secret;

/// What a secret shows in place of its value.
pub const REDACTED: &str = "[redacted]";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {variable}={value:?}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, value: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            variable,
            value: value.to_string(),
            problem: problem.into(),
        }
    }
}

/// Reads variables as typed values and notes each one read.
#[derive(Debug)]
pub struct Reader {
    sources: Sources,
    settings: Vec<Setting>,
    /// Secrets given in the plain environment or `.env` rather than in a
    /// file (`NAME_FILE`), which production warns of.
    plain_secrets: Vec<&'static str>,
}

impl Reader {
    pub fn new(sources: Sources) -> Reader {
        Reader {
            sources,
            settings: Vec::new(),
            plain_secrets: Vec::new(),
        }
    }

    /// The secrets given in the environment or `.env` itself, not in a
    /// file: anyone who can list the process's environment (or the
    /// container's definition) reads them.
    pub fn plain_secrets(&self) -> &[&'static str] {
        &self.plain_secrets
    }

    /// What was read so far, in order.
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// Text, or `default` when unset.
    pub fn text(&mut self, variable: &'static str, default: &str) -> String {
        self.read(variable, Some(default), false)
            .expect("a default is given")
    }

    /// Text, or `None` when unset.
    pub fn optional_text(&mut self, variable: &'static str) -> Option<String> {
        self.read(variable, None, false)
    }

    /// A value parsed from its text (or from `default`'s).
    pub fn parse<T>(
        &mut self,
        variable: &'static str,
        default: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let text = self.text(variable, default);
        parse(&text).map_err(|problem| ConfigError::new(variable, &text, problem))
    }

    /// A value parsed from its text, or `None` when unset.
    pub fn optional<T>(
        &mut self,
        variable: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.optional_text(variable) {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .map_err(|problem| ConfigError::new(variable, &text, problem)),
        }
    }

    /// A whole number within `range`.
    pub fn number<T>(
        &mut self,
        variable: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let out_of_range = format!("must be between {} and {}", range.start(), range.end());
        self.parse(variable, &default.to_string(), |text| {
            match text.parse::<T>() {
                Ok(value) if range.contains(&value) => Ok(value),
                Ok(_) => Err(out_of_range),
                // A whole number the type cannot hold (e.g. -1 for a count).
                Err(_) if text.parse::<i128>().is_ok() => Err(out_of_range),
                Err(_) => Err("not a whole number".into()),
            }
        })
    }

    /// A span of time, a whole number of `unit`s within `range`.
    pub fn duration(
        &mut self,
        variable: &'static str,
        unit: Unit,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<std::time::Duration, ConfigError> {
        let count = self.number(variable, default, range)?;
        Ok(match unit {
            Unit::Micros => std::time::Duration::from_micros(count),
            Unit::Millis => std::time::Duration::from_millis(count),
            Unit::Seconds => std::time::Duration::from_secs(count),
            Unit::Minutes => std::time::Duration::from_secs(count * 60),
            Unit::Hours => std::time::Duration::from_secs(count * 3600),
        })
    }

    /// An amount of at least 1 micro-USDC: integer micro-USDC or USDC with
    /// the suffix (`1.5USDC`), as the command line takes them.
    pub fn amount(&mut self, variable: &'static str, default: &str) -> Result<Micros, ConfigError> {
        self.parse(variable, default, |text| {
            let amount = Micros::parse_cli(text).map_err(|e| e.to_string())?;
            if amount.is_zero() {
                return Err("must be at least 1 micro-USDC".into());
            }
            Ok(amount)
        })
    }

    /// A request rate (`20/s`, `10/min`, `500/h`), or `None` for `off`.
    pub fn rate(
        &mut self,
        variable: &'static str,
        default: &str,
    ) -> Result<Option<Rate>, ConfigError> {
        self.parse(variable, default, |text| {
            Rate::parse(text)
                .ok_or_else(|| "must be a rate like 20/s, 10/min or 500/h, or off".into())
        })
    }

    /// On or off, spelled any of the ways in [`FLAG_SPELLINGS`].
    pub fn flag(&mut self, variable: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(variable, if default { "on" } else { "off" }, |text| {
            FLAG_SPELLINGS
                .iter()
                .find(|(spelling, _)| text.eq_ignore_ascii_case(spelling))
                .map(|(_, on)| *on)
                .ok_or_else(|| "must be on or off (also true/false, yes/no, 1/0)".into())
        })
    }

    /// One of the named `choices`, whatever its letter case.
    pub fn choice<T: Copy>(
        &mut self,
        variable: &'static str,
        default: &str,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        self.parse(variable, default, |text| {
            choices
                .iter()
                .find(|(name, _)| text.eq_ignore_ascii_case(name))
                .map(|(_, value)| *value)
                .ok_or_else(|| must_be_one_of(choices.iter().map(|(name, _)| *name)))
        })
    }

    /// A secret, or `None` when unset; `check` sees the text, the error
    /// and the explanation never do.
    pub fn secret(
        &mut self,
        variable: &'static str,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<Option<Secret>, ConfigError> {
        // A URL is a secret only with a password in it.
        let sensitive = |text: &str| !text.contains("://") || url_has_password(text);
        let Some(text) = self.read_secret(variable, None, sensitive)? else {
            return Ok(None);
        };
        check(&text).map_err(|problem| ConfigError::new(variable, REDACTED, problem))?;
        Ok(Some(Secret::new(text)))
    }

    /// A secret URL (it may hold a password), or `default`; shown as its
    /// scheme only.
    pub fn secret_url(
        &mut self,
        variable: &'static str,
        default: &str,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<Secret, ConfigError> {
        let text = self
            .read_secret(variable, Some(default), url_has_password)?
            .expect("a default is given");
        let noted = self.settings.iter_mut().find(|s| s.variable == variable);
        if let (Some(setting), Some((scheme, _))) = (noted, text.split_once(':')) {
            setting.value = Some(format!("{scheme}:{REDACTED}"));
        }
        check(&text).map_err(|problem| ConfigError::new(variable, REDACTED, problem))?;
        Ok(Secret::new(text))
    }

    /// A secret URL, or `None` when unset; shown as its scheme only.
    pub fn optional_secret_url(
        &mut self,
        variable: &'static str,
        check: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<Option<Secret>, ConfigError> {
        if self.lookup(variable).1.is_none() && self.lookup(&file_variable(variable)).1.is_none() {
            // Noted as unset.
            let _ = self.read(variable, None, true);
            return Ok(None);
        }
        self.secret_url(variable, "", check).map(Some)
    }

    /// A secret's text: from the file `NAME_FILE` names when that is set
    /// (the convention of the official container images; surrounding
    /// whitespace, such as a trailing newline, is not part of it), else
    /// as [`Reader::read`] finds it. Both set is refused. `sensitive`
    /// says whether a value in the environment counts as a plain secret
    /// (a URL without a password does not).
    fn read_secret(
        &mut self,
        variable: &'static str,
        default: Option<&str>,
        sensitive: impl FnOnce(&str) -> bool,
    ) -> Result<Option<String>, ConfigError> {
        let file_variable = file_variable(variable);
        let Some(path) = self.lookup(&file_variable).1 else {
            let given = self.lookup(variable).1.is_some();
            let text = self.read(variable, default, true);
            if given && text.as_deref().is_some_and(sensitive) {
                self.plain_secrets.push(variable);
            }
            return Ok(text);
        };
        if self.lookup(variable).1.is_some() {
            return Err(ConfigError::new(
                variable,
                REDACTED,
                format!("is also given in a file by {file_variable}; set one of the two"),
            ));
        }
        let in_file = |problem: String| {
            ConfigError::new(
                variable,
                REDACTED,
                format!("{file_variable}={path}: {problem}"),
            )
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| in_file(format!("cannot be read: {e}")))?;
        let text = text.trim();
        if text.is_empty() {
            return Err(in_file("the file is empty".into()));
        }
        if !self.settings.iter().any(|s| s.variable == variable) {
            self.settings.push(Setting {
                variable,
                source: Source::File,
                value: Some(REDACTED.to_string()),
                unused: None,
            });
        }
        Ok(Some(text.to_string()))
    }

    /// Marks variables read before as not applying (`why`), so the
    /// explanation says so.
    pub fn mark_unused(&mut self, variables: &[&str], why: &'static str) {
        for setting in &mut self.settings {
            if variables.contains(&setting.variable) {
                setting.unused = Some(why);
            }
        }
    }

    /// Where `variable` is set and its trimmed text; the environment wins
    /// over `.env`, even when empty there (as `dotenvy` never overrides
    /// a variable already set). Empty text is unset.
    fn lookup(&self, variable: &str) -> (Option<Source>, Option<String>) {
        let found = match self.sources.environment.get(variable) {
            Some(text) => Some((Source::Environment, text)),
            None => self
                .sources
                .dotenv
                .get(variable)
                .map(|text| (Source::DotEnv, text)),
        };
        match found {
            None => (None, None),
            Some((source, text)) => {
                let text = text.trim();
                (Some(source), (!text.is_empty()).then(|| text.to_string()))
            }
        }
    }

    /// The text of `variable` (or `default`), noted with its source the
    /// first time it is read.
    fn read(
        &mut self,
        variable: &'static str,
        default: Option<&str>,
        secret: bool,
    ) -> Option<String> {
        let (source, text) = match self.lookup(variable) {
            (source, Some(text)) => (source.expect("set somewhere"), Some(text)),
            (source, None) => match default {
                Some(default) => (Source::Default, Some(default.to_string())),
                None => (source.unwrap_or(Source::Default), None),
            },
        };
        if !self.settings.iter().any(|s| s.variable == variable) {
            self.settings.push(Setting {
                variable,
                source,
                value: match &text {
                    Some(_) if secret => Some(REDACTED.to_string()),
                    other => other.clone(),
                },
                unused: None,
            });
        }
        text
    }
}

/// The units a duration's variable names (`_US`, `_MS`, `_SECS`, `_MIN`,
/// `_HOURS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Micros,
    Millis,
    Seconds,
    Minutes,
    Hours,
}

/// Every spelling of on and off a flag accepts, in any letter case:
/// `on`/`off` (ACCESS_LOG and SCHEDULER took these) and `true`/`false`
/// (TRUST_FORWARDED_FOR took these) among them, so no `.env` breaks.
pub const FLAG_SPELLINGS: [(&str, bool); 8] = [
    ("on", true),
    ("off", false),
    ("true", true),
    ("false", false),
    ("yes", true),
    ("no", false),
    ("1", true),
    ("0", false),
];

/// The variable naming the file that holds `variable`'s secret.
fn file_variable(variable: &str) -> String {
    format!("{variable}_FILE")
}

/// Whether a URL carries a password (`scheme://user:password@host`).
fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(user_info, _)| user_info.contains(':'))
}

/// "must be a or b", or "must be one of a, b, c".
fn must_be_one_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    match names.as_slice() {
        [a, b] => format!("must be {a} or {b}"),
        _ => format!("must be one of {}", names.join(", ")),
    }
}

/// A request rate: `count` per `per` (RATE_LIMIT_* as `20/s`, `10/min`,
/// `500/h`); `None` where the variable is `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: std::time::Duration,
}

impl Rate {
    fn parse(text: &str) -> Option<Option<Rate>> {
        if text.eq_ignore_ascii_case("off") {
            return Some(None);
        }
        let (count, unit) = text.split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
        let per = match unit.trim() {
            "s" => std::time::Duration::from_secs(1),
            "min" => std::time::Duration::from_secs(60),
            "h" => std::time::Duration::from_secs(3600),
            _ => return None,
        };
        Some(Some(Rate { count, per }))
    }
}
