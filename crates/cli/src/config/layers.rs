//! The layers of a configuration as one TOML table: the defaults, then the file (tables
//! merge, values replace), then `REFLOOP_<SECTION>_<KEY>` environment variables, each read as
//! the type of the value it replaces. A `REFLOOP_` variable that names no setting is refused,
//! as an unknown key in the file is.

use std::path::Path;

use anyhow::Context;
use toml::{Table, Value};

/// `defaults`, then `file`, then the `REFLOOP_*` variables of `env`.
pub(super) fn table(
    defaults: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Table> {
    let mut table: Table = defaults.parse().context("the embedded defaults are valid TOML")?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let over: Table = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
        merge(&mut table, over);
    }
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("REFLOOP_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let segments: Vec<&str> = lower.split('_').collect();
        match env_path(&table, &segments) {
            Some(path) => {
                let like = get_path(&table, &path).cloned().unwrap_or(Value::String(String::new()));
                set_path(&mut table, &path, env_value(&raw, &like));
            }
            None => anyhow::bail!(
                "the environment variable {name} names no setting (REFLOOP_<SECTION>_<KEY>, as in the \
                 configuration file); unset it or fix its name"
            ),
        }
    }
    Ok(table)
}

/// Deep-merges `over` into `base`: tables merge, everything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Finds the path of `REFLOOP_A_B_C` in `table`, where keys may themselves hold `_`.
fn env_path(table: &Table, segments: &[&str]) -> Option<Vec<String>> {
    for n in (1..=segments.len()).rev() {
        let key = segments[..n].join("_");
        match table.get(&key) {
            Some(Value::Table(t)) if n < segments.len() => {
                if let Some(mut rest) = env_path(t, &segments[n..]) {
                    rest.insert(0, key);
                    return Some(rest);
                }
            }
            Some(v) if n == segments.len() && !v.is_table() => return Some(vec![key]),
            _ => {}
        }
    }
    None
}

/// An environment value: TOML when it parses as one of the default's type, else a string.
fn env_value(raw: &str, like: &Value) -> Value {
    match like {
        Value::Array(_) => {
            let parsed = format!("v = {raw}").parse::<Table>().ok().and_then(|mut t| t.remove("v"));
            match parsed {
                Some(v @ Value::Array(_)) => v,
                _ => Value::Array(
                    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.into())).collect(),
                ),
            }
        }
        Value::Integer(_) => raw.parse().map(Value::Integer).unwrap_or_else(|_| Value::String(raw.into())),
        Value::Boolean(_) => raw.parse().map(Value::Boolean).unwrap_or_else(|_| Value::String(raw.into())),
        _ => Value::String(raw.into()),
    }
}

fn get_path<'a>(t: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = t;
    for p in parents {
        cur = cur.get(p)?.as_table()?;
    }
    cur.get(last)
}

fn set_path(t: &mut Table, path: &[String], v: Value) {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut cur = t;
    for p in parents {
        cur = cur.entry(p.clone()).or_insert_with(|| Value::Table(Table::new())).as_table_mut().expect("table");
    }
    cur.insert(last.clone(), v);
}
