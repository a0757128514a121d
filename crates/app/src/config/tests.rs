//! The configuration as a whole: defaults, refusals naming their
//! variable, the oracles' requirements, production's refusals, and the
//! explanation of every setting.

use chrono::Duration;
use updown_domain::round::TiePolicy;
use updown_domain::schedule::ScheduleConfig;

use super::*;

fn setting<'a>(config: &'a Config, variable: &str) -> &'a Setting {
    config
        .explanation()
        .settings
        .iter()
        .find(|s| s.variable == variable)
        .unwrap_or_else(|| panic!("{variable} is explained"))
}

/// The variables in the README's configuration table.
fn readme_variables() -> Vec<&'static str> {
    let readme = include_str!("../../../../README.md");
    let table = &readme[readme.find("## Configuration").expect("a section")..];
    table
        .lines()
        .skip_while(|line| !line.starts_with("| variable"))
        .skip(2)
        .take_while(|line| line.starts_with("| `"))
        .map(|line| line.split('`').nth(1).expect("a variable in backquotes"))
        .collect()
}

#[test]
fn defaults_follow_the_seed() {
    let config = Config::with(&[]).unwrap();
    assert_eq!(config.database.url.expose(), DEFAULT_DATABASE_URL);
    assert_eq!(config.rounds.fee_bps, 100);
    assert_eq!(
        config.http.rate_sign_in,
        Some(Rate {
            count: 10,
            per: std::time::Duration::from_secs(60)
        })
    );
    assert_eq!(
        Config::with(&[("RATE_LIMIT_IP", "off")])
            .unwrap()
            .http
            .rate_per_ip,
        None
    );
    assert_eq!(config.rounds.schedule, ScheduleConfig::default());
    assert_eq!(config.rounds.cancel_cutoff, Duration::minutes(15));
    assert_eq!(config.rounds.market.as_str(), "NDX");
    assert_eq!(config.rounds.tie_policy, TiePolicy::Down);
    assert_eq!(config.telemetry.log_format, LogFormat::Auto);
}

#[test]
fn bad_values_name_their_variable() {
    for (variable, value) in [
        ("FEE_BPS", "10001"),
        ("FEE_BPS", "1.5"),
        ("SETTLE_GRACE_MIN", "-1"),
        ("TIE_POLICY", "coinflip"),
        ("MAX_BET", "1.5"),
        ("EXTRA_CLOSURES", "2031-13-01"),
        ("ORACLE", "magic"),
        ("ORACLE_SOURCES", "mock,oracle-of-delphi"),
        ("ORACLE_QUORUM", "0"),
        ("ORACLE_MAX_SPREAD_BPS", "10001"),
        ("CLOCK_START", "yesterday"),
        ("CLOCK_SPEED", "60"),
        ("TIMEZONE", "Mars/Olympus"),
        ("TIMEZONE", "Europe/London"),
        ("DATABASE_URL", "mysql://x"),
        ("BIND_ADDR", "localhost"),
        ("ADMIN_TOKEN", "short"),
        ("SCHEDULER", "sometimes"),
        ("SCHEDULER_TICK_SECS", "0"),
        ("REDIS_URL", "rediss://cache.example:6380"),
        ("RATE_LIMIT_KEY", "20"),
        ("RATE_LIMIT_IP", "0/s"),
        ("RATE_LIMIT_SIGN_IN", "5/day"),
        ("TRUST_FORWARDED_FOR", "perhaps"),
        ("ACCESS_LOG", "loud"),
        ("WALLET_XPUB", "xpub-not-a-key"),
        ("DEPOSIT_WEBHOOK_SECRET", "short"),
        ("DEPOSIT_TOKEN", "USDC"),
        ("DEPOSIT_CHAIN", "Ethereum Mainnet"),
        ("MIN_CONFIRMATIONS", "-1"),
        ("CHAIN_SENDER", "carrier-pigeon"),
        ("WITHDRAWAL_MIN", "0"),
        ("WITHDRAWAL_DAILY_MAX", "1.0000001USDC"),
        ("LIMIT_RAISE_COOLOFF_HOURS", "721"),
        ("BET_BATCH_WAIT_US", "soon"),
        ("SWEEP_MIN", "0"),
        // A master key (depth 0), not the account m/44'/60'/0'.
        ("WALLET_XPUB", "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8"),
        ("UPDOWN_ENV", "staging"),
    ] {
        let error = Config::with(&[(variable, value)]).unwrap_err();
        assert_eq!(error.variable, variable, "{error}");
    }
}

#[test]
fn every_setting_is_explained_once_with_secrets_redacted() {
    let config = Config::with(&[
        ("DATABASE_URL", "postgres://u:hunter2@h/db"),
        ("ADMIN_TOKEN", "a-very-secret-admin-token"),
        ("ORACLE_API_KEY", "unused-provider-key"),
    ])
    .unwrap();
    let settings = &config.explanation().settings;
    let mut names: Vec<&str> = settings.iter().map(|s| s.variable).collect();
    names.sort_unstable();
    let mut documented = readme_variables();
    documented.sort_unstable();
    assert_eq!(names, documented, "the README's table lists each, once");
    let shown = format!("{settings:?}");
    for secret in ["hunter2", "a-very-secret", "unused-provider-key"] {
        assert!(!shown.contains(secret), "{secret} shown: {shown}");
    }
    assert_eq!(
        setting(&config, "DATABASE_URL").value.as_deref(),
        Some("postgres:[redacted]")
    );
    let key = setting(&config, "ORACLE_API_KEY");
    assert_eq!(key.value.as_deref(), Some(REDACTED));
    assert!(key.unused.is_some(), "the mock oracle has no key");
}

#[test]
fn the_http_and_quorum_oracles_name_what_they_miss() {
    let missing = |vars: &[(&str, &str)]| Config::with(vars).unwrap_err().variable;
    assert_eq!(missing(&[("ORACLE", "http")]), "ORACLE_API_KEY");
    assert_eq!(missing(&[("ORACLE", "quorum")]), "ORACLE_SOURCES");
    assert_eq!(
        missing(&[("ORACLE", "quorum"), ("ORACLE_SOURCES", "mock,http")]),
        "ORACLE_API_KEY"
    );
    assert_eq!(
        missing(&[
            ("ORACLE", "quorum"),
            ("ORACLE_SOURCES", "mock"),
            ("ORACLE_QUORUM", "2")
        ]),
        "ORACLE_QUORUM"
    );
    let config = Config::with(&[
        ("ORACLE", "quorum"),
        ("ORACLE_SOURCES", "mock, http"),
        ("ORACLE_API_KEY", "key"),
    ])
    .unwrap();
    assert_eq!(config.oracle.sources, [OracleKind::Mock, OracleKind::Http]);
    let http = config.oracle.http.unwrap();
    assert_eq!(
        (http.base_url.as_str(), http.ticker.as_str()),
        ("https://api.polygon.io", "I:NDX")
    );
    assert!(
        !format!("{http:?}").contains("key\""),
        "the key is redacted"
    );
}

#[test]
fn twelvedata_reads_its_own_key_url_and_symbol() {
    let missing = |vars: &[(&str, &str)]| Config::with(vars).unwrap_err().variable;
    assert_eq!(
        missing(&[("ORACLE", "twelvedata")]),
        "ORACLE_TWELVEDATA_KEY"
    );
    assert_eq!(
        missing(&[
            ("ORACLE", "quorum"),
            ("ORACLE_SOURCES", "http,twelvedata"),
            ("ORACLE_API_KEY", "k")
        ]),
        "ORACLE_TWELVEDATA_KEY"
    );
    let config = Config::with(&[
        ("ORACLE", "quorum"),
        ("ORACLE_SOURCES", "http, twelvedata, csv"),
        ("ORACLE_API_KEY", "polygon-key"),
        ("ORACLE_TWELVEDATA_KEY", "twelve-key"),
        ("ORACLE_CSV_PATH", "closes.csv"),
        ("ORACLE_ATTEMPTS", "5"),
    ])
    .unwrap();
    assert_eq!(
        config.oracle.sources,
        [OracleKind::Http, OracleKind::TwelveData, OracleKind::Csv]
    );
    let (http, twelve) = (
        config.oracle.http.clone().unwrap(),
        config.oracle.twelvedata.clone().unwrap(),
    );
    assert_eq!(
        (
            twelve.base_url.as_str(),
            twelve.ticker.as_str(),
            twelve.attempts
        ),
        ("https://api.twelvedata.com", "NDX", 5)
    );
    assert_eq!(
        (twelve.api_key.expose(), http.api_key.expose()),
        ("twelve-key", "polygon-key"),
        "each provider its own key"
    );
    let key = config
        .explanation()
        .settings
        .iter()
        .find(|s| s.variable == "ORACLE_TWELVEDATA_KEY")
        .unwrap();
    assert_eq!(key.value.as_deref(), Some(REDACTED));
    // Without twelvedata among the sources, its variables are unused.
    let config = Config::with(&[("ORACLE_TWELVEDATA_SYMBOL", "^NDX")]).unwrap();
    assert!(config.oracle.twelvedata.is_none());
    let explained = config.explanation();
    let symbol = explained
        .settings
        .iter()
        .find(|s| s.variable == "ORACLE_TWELVEDATA_SYMBOL")
        .unwrap();
    assert!(symbol.unused.is_some(), "{symbol:?}");
}

#[test]
fn tiingo_reads_its_own_key_url_and_symbol() {
    let refused = |vars: &[(&str, &str)]| Config::with(vars).unwrap_err();
    assert_eq!(
        refused(&[("ORACLE", "tiingo")]).variable,
        "ORACLE_TIINGO_KEY"
    );
    assert_eq!(
        refused(&[
            ("ORACLE", "quorum"),
            ("ORACLE_SOURCES", "http,twelvedata,tiingo"),
            ("ORACLE_API_KEY", "k"),
            ("ORACLE_TWELVEDATA_KEY", "k")
        ])
        .variable,
        "ORACLE_TIINGO_KEY"
    );
    let bad_url = refused(&[
        ("ORACLE", "tiingo"),
        ("ORACLE_TIINGO_KEY", "k"),
        ("ORACLE_TIINGO_URL", "api.tiingo.com"),
    ]);
    assert_eq!(bad_url.variable, "ORACLE_TIINGO_URL");
    let unknown = refused(&[("ORACLE", "quorum"), ("ORACLE_SOURCES", "http,stooq")]);
    assert_eq!(unknown.variable, "ORACLE_SOURCES");
    assert!(
        unknown
            .to_string()
            .contains("twelvedata, tiingo and marketdata"),
        "{unknown}"
    );

    // The three-source quorum the README shows, for an ETF all three quote.
    let config = Config::with(&[
        ("MARKET_SYMBOL", "QQQ"),
        ("ORACLE", "quorum"),
        ("ORACLE_SOURCES", "http,twelvedata,tiingo"),
        ("ORACLE_QUORUM", "2"),
        ("ORACLE_API_KEY", "polygon-key"),
        ("ORACLE_TICKER", "QQQ"),
        ("ORACLE_TWELVEDATA_KEY", "twelve-key"),
        ("ORACLE_TIINGO_KEY", "tiingo-key"),
        ("ORACLE_ATTEMPTS", "4"),
    ])
    .unwrap();
    assert_eq!(
        config.oracle.sources,
        [OracleKind::Http, OracleKind::TwelveData, OracleKind::Tiingo]
    );
    let tiingo = config.oracle.tiingo.clone().unwrap();
    assert_eq!(
        (
            tiingo.base_url.as_str(),
            tiingo.ticker.as_str(),
            tiingo.attempts,
            tiingo.timeout
        ),
        (
            "https://api.tiingo.com",
            "QQQ",
            4,
            std::time::Duration::from_secs(5)
        ),
        "MARKET_SYMBOL by default, and the providers' shared settings"
    );
    let keys = [
        config.oracle.http.as_ref().unwrap().api_key.expose(),
        config.oracle.twelvedata.as_ref().unwrap().api_key.expose(),
        tiingo.api_key.expose(),
    ];
    assert_eq!(
        keys,
        ["polygon-key", "twelve-key", "tiingo-key"],
        "each provider its own key"
    );
    assert_eq!(
        setting(&config, "ORACLE_TIINGO_KEY").value.as_deref(),
        Some(REDACTED)
    );
    let config = Config::with(&[
        ("ORACLE", "tiingo"),
        ("ORACLE_TIINGO_KEY", "k"),
        ("ORACLE_TIINGO_URL", "http://127.0.0.1:9000"),
        ("ORACLE_TIINGO_SYMBOL", "SPY"),
    ])
    .unwrap();
    let tiingo = config.oracle.tiingo.unwrap();
    assert_eq!(
        (tiingo.base_url.as_str(), tiingo.ticker.as_str()),
        ("http://127.0.0.1:9000", "SPY")
    );
    assert!(config.oracle.http.is_none() && config.oracle.twelvedata.is_none());

    // Without tiingo among the sources, its variables are unused.
    let config = Config::with(&[("ORACLE_TIINGO_SYMBOL", "SPY")]).unwrap();
    assert!(config.oracle.tiingo.is_none());
    for variable in [
        "ORACLE_TIINGO_KEY",
        "ORACLE_TIINGO_URL",
        "ORACLE_TIINGO_SYMBOL",
    ] {
        let unused = &setting(&config, variable).unused;
        assert!(unused.is_some(), "{variable}: {unused:?}");
    }
}

#[test]
fn production_sends_withdrawals_by_hand_and_refuses_the_mock_chain() {
    let production = [("UPDOWN_ENV", "production"), ("ORACLE", "manual")];
    assert_eq!(
        Config::with(&production).unwrap().chain.sender,
        ChainSenderKind::Manual
    );
    assert_eq!(
        Config::with(&[]).unwrap().chain.sender,
        ChainSenderKind::Mock
    );
    let error = Config::with(&[
        ("UPDOWN_ENV", "production"),
        ("ORACLE", "manual"),
        ("CHAIN_SENDER", "mock"),
    ])
    .unwrap_err();
    assert_eq!(error.variable, "CHAIN_SENDER");
    let error = Config::with(&[
        ("WITHDRAWAL_MIN", "10USDC"),
        ("WITHDRAWAL_DAILY_MAX", "5USDC"),
    ])
    .unwrap_err();
    assert_eq!(error.variable, "WITHDRAWAL_DAILY_MAX");
}

#[test]
fn production_refuses_the_mock_oracle_and_a_simulated_clock() {
    let refused = |vars: &[(&str, &str)]| {
        let mut all = vec![("UPDOWN_ENV", "production")];
        all.extend_from_slice(vars);
        Config::with(&all).unwrap_err()
    };
    let unset = refused(&[]);
    assert_eq!(unset.variable, "ORACLE");
    assert!(unset.problem.contains("ORACLE=http"), "{unset}");
    assert_eq!(refused(&[("ORACLE", "mock")]).variable, "ORACLE");
    let quorum = [
        ("ORACLE", "quorum"),
        ("ORACLE_SOURCES", "csv,mock"),
        ("ORACLE_CSV_PATH", "closes.csv"),
    ];
    assert_eq!(refused(&quorum).variable, "ORACLE");
    let clock = refused(&[
        ("ORACLE", "manual"),
        ("CLOCK_START", "2026-11-24T20:58:00Z"),
    ]);
    assert_eq!(clock.variable, "CLOCK_START");
    assert!(clock.problem.contains("system clock"));
    let speed = refused(&[
        ("ORACLE", "manual"),
        ("CLOCK_START", "2026-11-24T20:58:00Z"),
        ("CLOCK_SPEED", "60"),
    ]);
    assert_eq!(speed.variable, "CLOCK_START");
    // Development keeps its conveniences.
    assert!(Config::with(&[("CLOCK_START", "2026-11-24T20:58:00Z")]).is_ok());
    assert!(Config::with(&[("UPDOWN_ENV", "production"), ("ORACLE", "manual")]).is_ok());
}

#[test]
fn serving_in_production_also_needs_an_admin_token_and_a_deposit_key() {
    let serving = |vars: &[(&str, &str)]| {
        let mut all = vec![("UPDOWN_ENV", "production"), ("ORACLE", "manual")];
        all.extend_from_slice(vars);
        let config = Config::with(&all).expect("fine for a command");
        refuse_unsafe_production(&config, Purpose::Serve).map_err(|e| e.variable)
    };
    let token = ("ADMIN_TOKEN", "a-production-token-0123456789");
    assert_eq!(serving(&[]), Err("ADMIN_TOKEN"));
    assert_eq!(serving(&[token]), Err("WALLET_XPUB"));
    let mut config =
        Config::with(&[("UPDOWN_ENV", "production"), ("ORACLE", "manual"), token]).unwrap();
    // Checked as read (see bad_values_name_their_variable); only its
    // presence matters here.
    config.chain.wallet_xpub = Some("xpub6...".into());
    assert_eq!(refuse_unsafe_production(&config, Purpose::Serve), Ok(()));
    // Development serves without either.
    let development = Config::with(&[]).unwrap();
    assert_eq!(
        refuse_unsafe_production(&development, Purpose::Serve),
        Ok(())
    );
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let config = Config::with(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn operator_closures_reach_the_calendar() {
    let config = Config::with(&[("EXTRA_CLOSURES", "2031-01-02, 2031-01-03")]).unwrap();
    assert!(!config
        .rounds
        .calendar()
        .is_session("2031-01-02".parse().unwrap()));
}

#[test]
fn the_chain_watcher_needs_its_node_and_production_a_safe_one() {
    let evm = |extra: &[(&'static str, &'static str)]| {
        let mut all = vec![("DEPOSIT_SOURCE", "evm")];
        all.extend_from_slice(extra);
        Config::with(&all)
    };
    assert_eq!(evm(&[]).unwrap_err().variable, "EVM_RPC_URL");
    assert_eq!(
        evm(&[("EVM_RPC_URL", "http://127.0.0.1:8545")])
            .unwrap_err()
            .variable,
        "EVM_CHAIN_ID"
    );
    assert_eq!(
        evm(&[("EVM_RPC_URL", "ftp://node"), ("EVM_CHAIN_ID", "1")])
            .unwrap_err()
            .variable,
        "EVM_RPC_URL"
    );
    let config = evm(&[
        (
            "EVM_RPC_URL",
            "https://user:k3y8c1f@node.example/v3/k3y8c1f",
        ),
        ("EVM_CHAIN_ID", "1"),
    ])
    .unwrap();
    assert_eq!(config.chain.deposit_source, DepositSource::Evm);
    assert_eq!(config.chain.evm.log_range, 2_000);
    // The URL may hold a key: shown as its scheme only.
    assert_eq!(
        setting(&config, "EVM_RPC_URL").value.as_deref(),
        Some(format!("https:{REDACTED}").as_str())
    );
    assert!(!format!("{config:?}").contains("k3y8c1f"));

    let production = |url: &'static str, allow: &'static str| {
        Config::with(&[
            ("UPDOWN_ENV", "production"),
            ("ORACLE", "manual"),
            ("DEPOSIT_SOURCE", "evm"),
            ("EVM_CHAIN_ID", "1"),
            ("EVM_RPC_URL", url),
            ("EVM_ALLOW_INSECURE_RPC", allow),
        ])
        .map(|_| ())
        .map_err(|e| e.variable)
    };
    assert_eq!(
        production("http://node.example:8545", "off"),
        Err("EVM_RPC_URL")
    );
    assert_eq!(production("http://node.example:8545", "1"), Ok(()));
    assert_eq!(production("http://localhost:8545", "off"), Ok(()));
    assert_eq!(production("https://node.example", "off"), Ok(()));
}

#[test]
fn the_evm_sender_needs_its_key_file_and_the_key_decides_the_hot_wallet() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("updown-config-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("hot.key");
    // anvil's first development key: its address is public knowledge.
    std::fs::write(
        &key,
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n",
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let key_path = key.display().to_string();
    let node = [
        ("CHAIN_SENDER", "evm"),
        ("EVM_RPC_URL", "http://127.0.0.1:8545"),
        ("EVM_CHAIN_ID", "31337"),
    ];
    let with = |extra: &[(&'static str, &str)]| {
        let mut all: Vec<(&str, &str)> = node.to_vec();
        all.extend_from_slice(extra);
        Config::with(&all)
    };
    assert_eq!(with(&[]).unwrap_err().variable, "HOT_WALLET_KEY_FILE");
    let missing = with(&[("HOT_WALLET_KEY_FILE", "/nonexistent/hot.key")]).unwrap_err();
    assert_eq!(missing.variable, "HOT_WALLET_KEY_FILE");
    let config = with(&[("HOT_WALLET_KEY_FILE", &key_path)]).unwrap();
    assert_eq!(config.chain.sender, ChainSenderKind::Evm);
    let hot = config.chain.evm.hot_wallet.unwrap().to_checksum();
    assert_eq!(hot, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    assert!(
        !format!("{config:?}").contains("ac0974"),
        "the key never shows"
    );
    assert_eq!(config.chain.sending.batch_max, 25);
    assert_eq!(config.chain.sending.sweep_min.get(), 10_000_000);
    assert_eq!(config.chain.sending.sweep_seed_file, None);
    assert_eq!(config.chain.sending.min_gas_balance, 5_000_000_000_000_000);
    let other = with(&[
        ("HOT_WALLET_KEY_FILE", &key_path),
        (
            "HOT_WALLET_ADDRESS",
            "0x4242424242424242424242424242424242424242",
        ),
    ])
    .unwrap_err();
    assert_eq!(other.variable, "HOT_WALLET_ADDRESS");
    assert_eq!(config.chain.explorer_tx_url, None);
    assert_eq!(
        with(&[
            ("HOT_WALLET_KEY_FILE", &key_path),
            ("EXPLORER_TX_URL", "https://scan.example/tx/")
        ])
        .unwrap_err()
        .variable,
        "EXPLORER_TX_URL"
    );
    assert_eq!(
        with(&[
            ("HOT_WALLET_KEY_FILE", &key_path),
            ("MIN_GAS_BALANCE", "lots")
        ])
        .unwrap_err()
        .variable,
        "MIN_GAS_BALANCE"
    );
    // Production reads only a private key file.
    let production = Config::with(&[
        ("UPDOWN_ENV", "production"),
        ("ORACLE", "manual"),
        ("CHAIN_SENDER", "evm"),
        ("EVM_RPC_URL", "http://127.0.0.1:8545"),
        ("EVM_CHAIN_ID", "31337"),
        ("HOT_WALLET_KEY_FILE", &key_path),
    ]);
    let refused = production.unwrap_err();
    assert_eq!(refused.variable, "HOT_WALLET_KEY_FILE");
    assert!(refused.to_string().contains("chmod 600"), "{refused}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn marketdata_reads_its_own_key_url_and_symbol() {
    let refused = |vars: &[(&str, &str)]| Config::with(vars).unwrap_err();
    assert_eq!(
        refused(&[("ORACLE", "marketdata")]).variable,
        "ORACLE_MARKETDATA_KEY"
    );
    let bad_url = refused(&[
        ("ORACLE", "marketdata"),
        ("ORACLE_MARKETDATA_KEY", "k"),
        ("ORACLE_MARKETDATA_URL", "api.marketdata.app"),
    ]);
    assert_eq!(bad_url.variable, "ORACLE_MARKETDATA_URL");
    for prefixed in ["^NDX", "I:NDX", "$NDX", "NDX/X", "N DX"] {
        let error = refused(&[
            ("ORACLE", "marketdata"),
            ("ORACLE_MARKETDATA_KEY", "k"),
            ("ORACLE_MARKETDATA_SYMBOL", prefixed),
        ]);
        assert_eq!(error.variable, "ORACLE_MARKETDATA_SYMBOL", "{prefixed}");
        assert!(error.to_string().contains("without a prefix"), "{error}");
    }

    // The README's quorum of three index sources.
    let config = Config::with(&[
        ("ORACLE", "quorum"),
        ("ORACLE_SOURCES", "http,twelvedata,marketdata"),
        ("ORACLE_QUORUM", "2"),
        ("ORACLE_API_KEY", "polygon-key"),
        ("ORACLE_TWELVEDATA_KEY", "twelve-key"),
        ("ORACLE_MARKETDATA_KEY", "marketdata-key"),
    ])
    .unwrap();
    assert_eq!(
        config.oracle.sources,
        [
            OracleKind::Http,
            OracleKind::TwelveData,
            OracleKind::MarketData
        ]
    );
    let marketdata = config.oracle.marketdata.clone().unwrap();
    assert_eq!(
        (
            marketdata.base_url.as_str(),
            marketdata.ticker.as_str(),
            marketdata.api_key.expose(),
            config.oracle.http.as_ref().unwrap().ticker.as_str(),
        ),
        (
            "https://api.marketdata.app",
            "NDX",
            "marketdata-key",
            "I:NDX"
        ),
        "each index under its provider's name for it, by default"
    );
    assert_eq!(
        setting(&config, "ORACLE_MARKETDATA_KEY").value.as_deref(),
        Some(REDACTED)
    );
    let config = Config::with(&[
        ("ORACLE", "marketdata"),
        ("ORACLE_MARKETDATA_KEY", "k"),
        ("ORACLE_MARKETDATA_URL", "http://127.0.0.1:9000"),
        ("ORACLE_MARKETDATA_SYMBOL", "SPX"),
    ])
    .unwrap();
    let marketdata = config.oracle.marketdata.unwrap();
    assert_eq!(
        (marketdata.base_url.as_str(), marketdata.ticker.as_str()),
        ("http://127.0.0.1:9000", "SPX")
    );

    // Without marketdata among the sources, its variables are unused.
    let config = Config::with(&[("ORACLE_MARKETDATA_SYMBOL", "SPX")]).unwrap();
    assert!(config.oracle.marketdata.is_none());
    for variable in [
        "ORACLE_MARKETDATA_KEY",
        "ORACLE_MARKETDATA_URL",
        "ORACLE_MARKETDATA_SYMBOL",
    ] {
        let unused = &setting(&config, variable).unused;
        assert!(unused.is_some(), "{variable}: {unused:?}");
    }
}
