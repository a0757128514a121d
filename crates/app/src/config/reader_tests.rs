//! The reader's getters and the sources they note.

use std::collections::HashMap;

use updown_domain::round::TiePolicy;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A reader over `environment` and a `.env` of `dotenv`.
fn reader(environment: &[(&str, &str)], dotenv: &[(&str, &str)]) -> Reader {
    Reader::new(Sources {
        environment: vars(environment),
        dotenv: vars(dotenv),
        dotenv_path: Some(".env".into()),
        dotenv_problem: None,
    })
}

#[test]
fn flags_take_every_spelling_in_any_case() {
    for (text, on) in [
        ("on", true),
        ("OFF", false),
        ("true", true),
        ("False", false),
        ("yes", true),
        ("NO", false),
        ("1", true),
        ("0", false),
        (" on ", true),
    ] {
        let mut r = reader(&[("SCHEDULER", text)], &[]);
        assert_eq!(r.flag("SCHEDULER", !on), Ok(on), "{text:?}");
    }
    // Each flag takes them all, including the ones it took before.
    let config = Config::with(&[
        ("TRUST_FORWARDED_FOR", "yes"),
        ("ACCESS_LOG", "false"),
        ("SCHEDULER", "0"),
    ])
    .unwrap();
    assert!(config.http.trust_forwarded_for);
    assert!(!config.http.access_log);
    assert!(!config.scheduler.enabled);
    let mut r = reader(&[("ACCESS_LOG", "loud")], &[]);
    let error = r.flag("ACCESS_LOG", true).unwrap_err();
    assert_eq!(
        (error.variable, error.value.as_str()),
        ("ACCESS_LOG", "loud")
    );
    assert!(error.problem.contains("on or off"), "{error}");
}

#[test]
fn getters_read_their_types_and_refuse_with_the_variable() {
    let mut r = reader(
        &[
            ("COUNT", "7"),
            ("NEGATIVE", "-1"),
            ("AMOUNT", "1.5USDC"),
            ("RATE", "10/min"),
            ("WAIT_MS", "250"),
            ("KIND", "Manual"),
        ],
        &[],
    );
    assert_eq!(r.number("COUNT", 1u32, 0..=10), Ok(7));
    assert_eq!(r.number("UNSET", 3u32, 0..=10), Ok(3));
    let negative = r.number("NEGATIVE", 1u32, 0..=10).unwrap_err();
    assert_eq!(negative.problem, "must be between 0 and 10");
    assert_eq!(r.amount("AMOUNT", "1USDC").unwrap().to_string(), "1500000");
    assert_eq!(
        r.rate("RATE", "off").unwrap().map(|rate| rate.count),
        Some(10)
    );
    assert_eq!(
        r.duration("WAIT_MS", Unit::Millis, 1, 0..=1000),
        Ok(std::time::Duration::from_millis(250))
    );
    assert_eq!(
        r.choice("KIND", "mock", &[("mock", 1), ("manual", 2)]),
        Ok(2)
    );
    let mut r = reader(&[("KIND", "other")], &[]);
    let error = r
        .choice("KIND", "mock", &[("mock", 1), ("manual", 2)])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid configuration: KIND=\"other\": must be mock or manual"
    );
}

#[test]
fn sources_are_noted_and_the_environment_wins_over_dotenv() {
    let mut r = reader(
        &[("FEE_BPS", "250"), ("TIE_POLICY", "refund"), ("EMPTY", "")],
        &[("TIE_POLICY", "down"), ("MAX_BET", "5USDC"), ("EMPTY", "7")],
    );
    let config = Config::from_reader(&mut r).unwrap();
    assert_eq!(config.rounds.tie_policy, TiePolicy::Refund);
    assert_eq!(config.limits.max_bet.to_string(), "5000000");
    let seen = |variable| {
        let s = config
            .explanation()
            .settings
            .iter()
            .find(|s| s.variable == variable)
            .expect("explained");
        (s.source, s.value.clone())
    };
    assert_eq!(seen("FEE_BPS"), (Source::Environment, Some("250".into())));
    assert_eq!(
        seen("TIE_POLICY"),
        (Source::Environment, Some("refund".into()))
    );
    assert_eq!(seen("MAX_BET"), (Source::DotEnv, Some("5USDC".into())));
    assert_eq!(seen("MARKET_SYMBOL"), (Source::Default, Some("NDX".into())));
    assert_eq!(seen("REDIS_URL"), (Source::Default, None));
    // Set but empty in the environment: unset, and `.env` does not fill it.
    let mut r = reader(&[("EMPTY", "")], &[("EMPTY", "7")]);
    assert_eq!(r.optional_text("EMPTY"), None);
    assert_eq!(r.settings()[0].source, Source::Environment);
}

#[test]
fn secrets_come_from_files_named_by_name_file() {
    let folder = std::env::temp_dir().join(format!("updown-secret-files-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let token = folder.join("admin-token");
    std::fs::write(&token, "a-token-from-a-file-0123\n").unwrap();
    let url = folder.join("database-url");
    std::fs::write(&url, "postgres://app:hunter2@db:5432/updown\n").unwrap();
    let empty = folder.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();

    let config = Config::with(&[
        ("ADMIN_TOKEN_FILE", &path(&token)),
        ("DATABASE_URL_FILE", &path(&url)),
        ("DEPOSIT_WEBHOOK_SECRET", "a-plain-secret-0123456"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ])
    .unwrap();
    // The file's text, without its trailing newline.
    assert_eq!(
        config.http.admin_token.as_ref().unwrap().expose(),
        "a-token-from-a-file-0123"
    );
    assert_eq!(
        config.database.url.expose(),
        "postgres://app:hunter2@db:5432/updown"
    );
    let explained = |variable| {
        config
            .explanation()
            .settings
            .iter()
            .find(|s| s.variable == variable)
            .map(|s| (s.source, s.value.clone()))
            .unwrap()
    };
    assert_eq!(
        explained("ADMIN_TOKEN"),
        (Source::File, Some(REDACTED.into()))
    );
    assert_eq!(
        explained("DATABASE_URL"),
        (Source::File, Some(format!("postgres:{REDACTED}")))
    );
    // Only the secret in the plain environment is one production warns of
    // (a Redis URL without a password is not a secret).
    assert_eq!(
        config.explanation().plain_secrets,
        vec!["DEPOSIT_WEBHOOK_SECRET"]
    );
    let plain = Config::with(&[("DATABASE_URL", "postgres://app:pw@db/updown")]).unwrap();
    assert_eq!(plain.explanation().plain_secrets, vec!["DATABASE_URL"]);

    // Both ways at once, a missing file, an empty one: refused, naming the
    // variable and never the secret.
    let both = Config::with(&[
        ("ADMIN_TOKEN", "a-token-in-the-environment"),
        ("ADMIN_TOKEN_FILE", &path(&token)),
    ])
    .unwrap_err();
    assert_eq!(both.variable, "ADMIN_TOKEN");
    assert!(both.problem.contains("ADMIN_TOKEN_FILE"), "{both}");
    let missing = Config::with(&[
        ("ORACLE_API_KEY_FILE", "/nonexistent/key"),
        ("ORACLE", "http"),
    ])
    .unwrap_err();
    assert_eq!(missing.variable, "ORACLE_API_KEY");
    assert!(missing.problem.contains("cannot be read"), "{missing}");
    let empty = Config::with(&[("ADMIN_TOKEN_FILE", &path(&empty))]).unwrap_err();
    assert!(empty.problem.contains("empty"), "{empty}");
    // The file's secret is checked as the variable's would be.
    std::fs::write(&token, "short").unwrap();
    let short = Config::with(&[("ADMIN_TOKEN_FILE", &path(&token))]).unwrap_err();
    assert_eq!(
        (short.variable, short.value.as_str()),
        ("ADMIN_TOKEN", REDACTED)
    );
    std::fs::remove_dir_all(&folder).unwrap();
}
