//! `deploy/.env.example` names every key of the configuration, under its
//! environment variable and with its default, and nothing else. The keys
//! come from the configuration's own types, so a key added to the code (a new
//! section included) fails this test until the file has it.

// figment's Jail API returns its (large) error type; fine in tests.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};

use figment::Jail;
use serde_json::{Value, json};

use super::super::{ConfigFile, ENV_PREFIX};

const ENV_EXAMPLE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/.env.example"
));

/// A key of the file: `section` is empty for a top-level key (`data_dir`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    section: String,
    name: String,
}

impl Key {
    /// `DARKSWAP_RELAY_<SECTION>__<KEY>`, or `DARKSWAP_RELAY_<KEY>` at the top.
    fn env_name(&self) -> String {
        let path = if self.section.is_empty() {
            self.name.clone()
        } else {
            format!("{}__{}", self.section, self.name)
        };
        format!("{ENV_PREFIX}{}", path.to_uppercase())
    }

    fn default_value<'a>(&self, defaults: &'a Value) -> Option<&'a Value> {
        let value = if self.section.is_empty() {
            defaults.get(&self.name)
        } else {
            defaults.get(&self.section)?.get(&self.name)
        };
        value.filter(|v| !v.is_null())
    }
}

/// The field names serde knows for the struct at `path`, read from the
/// "unknown field `x`, expected one of `a`, `b`" error of deserializing an
/// unknown field there. This finds the optional keys the serialization of
/// the defaults leaves out (`skip_serializing_if`, e.g. `turn.secret`).
fn field_names(path: &[&str]) -> BTreeSet<String> {
    let mut probe = json!({ "__probe__": 0 });
    for segment in path.iter().rev() {
        probe = json!({ *segment: probe });
    }
    let error = serde_json::from_value::<ConfigFile>(probe)
        .expect_err("an unknown field is refused")
        .to_string();
    let expected = error
        .split_once("expected")
        .unwrap_or_else(|| panic!("serde's unknown-field message changed: {error}"))
        .1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every key of the configuration: the sections and keys of the serialized
/// defaults, plus the keys serde knows that the serialization skips.
fn config_keys(defaults: &Value) -> BTreeSet<Key> {
    let top = defaults.as_object().expect("the file is a table");
    let mut keys = BTreeSet::new();
    for name in field_names(&[]) {
        match top.get(&name) {
            Some(Value::Object(section)) => {
                let mut names: BTreeSet<String> = section.keys().cloned().collect();
                let known = field_names(&[&name]);
                // If serde's message ever stops listing fields, this fails
                // here rather than the test passing on a short list.
                assert!(
                    known.is_superset(&names),
                    "[{name}]: serde lists {known:?}, the defaults have {names:?}"
                );
                names.extend(known);
                keys.extend(names.into_iter().map(|key| Key {
                    section: name.clone(),
                    name: key,
                }));
            }
            _ => {
                keys.insert(Key {
                    section: String::new(),
                    name,
                });
            }
        }
    }
    keys
}

/// `NAME=value` lines, commented out or not, in file order.
fn env_example_variables() -> Vec<(String, String)> {
    ENV_EXAMPLE
        .lines()
        .map(|line| line.trim_start_matches('#').trim())
        .filter(|line| line.starts_with(ENV_PREFIX))
        .map(|line| {
            let (name, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("deploy/.env.example: `{line}` has no `=`"));
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "deploy/.env.example: `{line}` is not NAME=value"
            );
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// The line a missing key needs, with its default when it has one.
fn suggested_line(key: &Key, defaults: &Value) -> String {
    match key.default_value(defaults) {
        Some(Value::String(s)) => format!("# {}={s}", key.env_name()),
        Some(v) => format!("# {}={v}", key.env_name()),
        None => format!("# {}=<no default: an example>", key.env_name()),
    }
}

#[test]
fn env_example_names_every_key_and_only_real_keys() {
    let defaults = serde_json::to_value(ConfigFile::default()).unwrap();
    let keys = config_keys(&defaults);
    let by_env: BTreeMap<String, &Key> = keys.iter().map(|k| (k.env_name(), k)).collect();
    let variables = env_example_variables();

    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, _) in &variables {
        if !by_env.contains_key(name) {
            problems.push(format!("{name} is no key of the configuration"));
        }
        if !seen.insert(name.clone()) {
            problems.push(format!("{name} is there twice"));
        }
    }
    for key in &keys {
        if !seen.contains(&key.env_name()) {
            problems.push(format!("lacks {}", suggested_line(key, &defaults)));
        }
    }
    assert!(
        problems.is_empty(),
        "deploy/.env.example:\n{}",
        problems.join("\n")
    );
}

#[test]
fn env_example_values_load_and_are_the_defaults() {
    let variables = env_example_variables();
    let defaults = serde_json::to_value(ConfigFile::default()).unwrap();
    let keys = config_keys(&defaults);
    Jail::expect_with(|jail| {
        // Every line uncommented at once, as `EnvironmentFile=` would read
        // it: the whole file must load and validate.
        for (name, value) in &variables {
            jail.set_env(name, value);
        }
        let file = ConfigFile::load(None, json!({}))
            .unwrap_or_else(|e| panic!("deploy/.env.example does not load: {e}"));
        let loaded = serde_json::to_value(file).unwrap();
        for key in &keys {
            // The data dir is platform-specific: the file shows the one the
            // systemd unit uses. Keys with no default show an example.
            if key.name == "data_dir" && key.section.is_empty() {
                continue;
            }
            if let Some(default) = key.default_value(&defaults) {
                assert_eq!(
                    key.default_value(&loaded),
                    Some(default),
                    "deploy/.env.example: {} is not the default",
                    key.env_name()
                );
            }
        }
        Ok(())
    });
}
