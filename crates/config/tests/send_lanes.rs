//! `[[rpc.send_lanes]]` through `load_valid`, as `config check` and every run read it:
//! header values from the environment (a missing variable named), the one-variable
//! environment form, typed refusals by key, and nothing secret in what is printed.
//! Each test runs in a figment `Jail`: its own directory and environment, restored after.
#![allow(
    clippy::result_large_err,
    reason = "figment's Jail closures return figment's own error type"
)]

use figment::Jail;
use kyzlo_config::{ConfigError, load_valid};

const TIP_ACCOUNT: &str = "96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5";

fn jail(test: impl FnOnce(&mut Jail) -> figment::error::Result<()>) {
    Jail::expect_with(test);
}

#[test]
fn a_lanes_header_is_read_from_its_variable_and_never_printed() {
    jail(|jail| {
        jail.create_file(
            "kyzlo.toml",
            &format!(
                r#"
[[rpc.send_lanes]]
name = "helius"
url = "https://lane.example/?api-key=url-secret-1"
headers = {{ "x-api-key" = "LANES_TEST_KEY_1" }}
tip = {{ account = "{TIP_ACCOUNT}", lamports = 10000 }}

[[rpc.send_lanes]]
url = "https://second.example/"
skip_preflight = true
"#
            ),
        )?;
        jail.set_env("LANES_TEST_KEY_1", "header-secret-1");
        let config = load_valid(None, None).expect("valid");
        let lanes = &config.rpc.send_lanes;
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes[0].label, "helius");
        assert_eq!(lanes[0].headers[0].name, "x-api-key");
        assert_eq!(lanes[0].headers[0].value.expose(), "header-secret-1");
        assert_eq!(lanes[0].tip.map(|t| t.lamports), Some(10_000));
        assert!(!lanes[0].skip_preflight, "rpc.skip_preflight's default");
        assert_eq!(lanes[1].label, "https://second.example");
        assert!(lanes[1].skip_preflight);

        let shown = config.file.masked_toml().expect("masked");
        assert!(!shown.contains("header-secret-1"), "{shown}");
        assert!(!shown.contains("url-secret-1"), "{shown}");
        assert!(
            shown.contains("LANES_TEST_KEY_1"),
            "the variable's name: {shown}"
        );
        assert!(shown.contains("https://lane.example/***"), "{shown}");
        let debug = format!("{config:?}");
        assert!(!debug.contains("header-secret-1"), "{debug}");
        Ok(())
    });
}

#[test]
fn a_lane_whose_variable_is_not_set_is_refused_naming_the_variable() {
    jail(|jail| {
        jail.create_file(
            "kyzlo.toml",
            r#"
[[rpc.send_lanes]]
url = "https://lane.example/"
headers = { "x-api-key" = "LANES_TEST_NEVER_SET_2" }
"#,
        )?;
        let result = load_valid(None, None);
        let text = result
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        match result {
            Err(ConfigError::MissingVariable { key, variable }) => {
                assert_eq!(key, "rpc.send_lanes[0].headers.x-api-key");
                assert_eq!(variable, "LANES_TEST_NEVER_SET_2");
                assert!(text.contains("LANES_TEST_NEVER_SET_2 is not set"), "{text}");
            }
            other => panic!("expected a missing variable, got {other:?}"),
        }
        Ok(())
    });
}

#[test]
fn a_bad_tip_account_is_refused_naming_its_key() {
    jail(|jail| {
        jail.create_file(
            "kyzlo.toml",
            r#"
[[rpc.send_lanes]]
url = "https://lane.example/"
tip = { account = "not-a-pubkey", lamports = 1000 }
"#,
        )?;
        match load_valid(None, None) {
            Err(ConfigError::Invalid { key, value, .. }) => {
                assert_eq!(key, "rpc.send_lanes[0].tip.account");
                assert_eq!(value, "not-a-pubkey");
            }
            other => panic!("expected an invalid tip account, got {other:?}"),
        }
        Ok(())
    });
}

#[test]
fn lanes_can_be_given_in_one_environment_variable() {
    jail(|jail| {
        jail.set_env("LANES_TEST_KEY_3", "header-secret-3");
        jail.set_env(
            "KYZLO_RPC__SEND_LANES",
            format!(
                r#"[{{url="https://a.example/?api-key=k", headers={{x-api-key="LANES_TEST_KEY_3"}}, tip={{account="{TIP_ACCOUNT}", lamports=5000}}}}, {{name="b", url="https://b.example/", skip_preflight=true}}]"#
            ),
        );
        let config = load_valid(None, None).expect("valid");
        let lanes = &config.rpc.send_lanes;
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes[0].url.as_str(), "https://a.example/?api-key=k");
        assert_eq!(lanes[0].headers[0].name, "x-api-key");
        assert_eq!(lanes[0].headers[0].value.expose(), "header-secret-3");
        assert_eq!(
            lanes[0].tip.map(|t| (t.account.to_string(), t.lamports)),
            Some((TIP_ACCOUNT.to_owned(), 5_000))
        );
        assert_eq!(lanes[1].label, "b");
        assert!(lanes[1].skip_preflight);
        Ok(())
    });
}

#[test]
fn a_send_lanes_variable_of_the_wrong_shape_is_refused_without_echoing_it() {
    jail(|jail| {
        jail.set_env(
            "KYZLO_RPC__SEND_LANES",
            "https://lane.example/?api-key=env-secret-4",
        );
        let error = load_valid(None, None).expect_err("not a list of lanes");
        let text = error.to_string();
        assert!(text.contains("rpc.send_lanes"), "{text}");
        assert!(!text.contains("env-secret-4"), "{text}");
        Ok(())
    });
}
