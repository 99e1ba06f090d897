//! A derived configuration read through serde (the `serde` feature), so that envy, figment,
//! config-rs or a `#[serde(flatten)]` section produce it with the same resolution and the same
//! every-problem [`ConfigError`] as `from_env`.
//!
//! The deserializer's map is turned back into variables: a key names a variable by its full
//! name (`AZURE_REDIS_HOST`) or by the name after the prefix (`host`, as `envy::prefixed` and
//! figment's `Env::prefixed` hand it over), in any case; a full name wins over a short one for
//! the same variable. Keys that name no variable are skipped, since a flattened section sees
//! every key its parent did not take. Strings, integers and bools become the variable's text;
//! floats keep their decimal point (`6380.0` is not a port); a null is an unset variable; a map
//! or a sequence under a variable's key is a problem of its own, reported with the others.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{AzureRedisConfig, ConfigError, ConfigSpec, Problem, VarSource};

/// `C::deserialize`, as the derive implements it with the `serde` feature. Not part of the
/// public API.
pub fn deserialize<'de, C, D>(deserializer: D) -> Result<C, D::Error>
where
    C: AzureRedisConfig,
    D: Deserializer<'de>,
{
    let spec = C::SPEC;
    // `deserialize_any`, not `deserialize_map`: a deserializer refusing a string where a map
    // was asked for would quote the string, which may be a connection string with its key.
    // Every loader that hands over maps is self-describing; a flattened section is a map.
    let section = deserializer.deserialize_any(SectionVisitor { spec })?;
    let (vars, problems) = section.into_vars(spec);
    let error = match C::from_var_source(&vars) {
        Ok(config) if problems.is_empty() => return Ok(config),
        Ok(_) => ConfigError::new(spec.name, problems),
        Err(error) => merge(error, problems),
    };
    // The message is the ConfigError's: every problem, each naming its variable, no secret.
    Err(de::Error::custom(error))
}

/// The resolution's problems with the loader's own: a value that is not a scalar replaces the
/// "is not set" of its variable (it was left out of the variables read).
fn merge(error: ConfigError, loader: Vec<Problem>) -> ConfigError {
    let mut problems = error.problems().to_vec();
    for problem in loader {
        match problems.iter().position(|p| p.var() == problem.var()) {
            Some(at) => problems[at] = problem,
            None => problems.push(problem),
        }
    }
    ConfigError::new(error.config(), problems)
}

/// The variable a key names, and whether it names it in full.
fn variable_for(spec: &ConfigSpec, key: &str) -> Option<(usize, bool)> {
    let mut short = None;
    for (index, var) in spec.variables.iter().enumerate() {
        if key.eq_ignore_ascii_case(var.env) {
            return Some((index, true));
        }
        if short.is_none()
            && let Some(rest) = var.env.strip_prefix(spec.prefix)
            && !rest.is_empty()
            && key.eq_ignore_ascii_case(rest)
        {
            short = Some((index, false));
        }
    }
    short
}

/// A variable's value as a loader gave it.
enum Value {
    Text(String),
    Unset,
    /// Not a scalar: what it is, for the message.
    NotScalar(&'static str),
}

/// What a variable's key and value were.
struct Entry {
    key: String,
    full_name: bool,
    value: Value,
}

/// The entries of a section, one slot per variable of the spec.
struct Section {
    slots: Vec<Option<Entry>>,
}

impl Section {
    fn new(spec: &ConfigSpec) -> Section {
        Section {
            slots: spec.variables.iter().map(|_| None).collect(),
        }
    }

    fn insert(&mut self, index: usize, entry: Entry) {
        let slot = &mut self.slots[index];
        // A later key replaces an earlier one, unless only the earlier names the variable in full.
        if !slot
            .as_ref()
            .is_some_and(|old| old.full_name && !entry.full_name)
        {
            *slot = Some(entry);
        }
    }

    fn into_vars(self, spec: &ConfigSpec) -> (VarSource, Vec<Problem>) {
        let mut vars = Vec::new();
        let mut problems = Vec::new();
        for (var, entry) in spec.variables.iter().zip(self.slots) {
            let Some(entry) = entry else { continue };
            match entry.value {
                Value::Text(text) => vars.push((var.env, text)),
                Value::Unset => {}
                Value::NotScalar(found) => problems.push(Problem::NotScalar {
                    var: var.env,
                    key: entry.key,
                    found,
                }),
            }
        }
        (vars.into_iter().collect(), problems)
    }
}

/// Visits the map of a whole section.
struct SectionVisitor {
    spec: &'static ConfigSpec,
}

impl SectionVisitor {
    /// The section itself is not a map. The value is left out: it might be a secret.
    fn not_a_map<E: de::Error>(&self, found: &str) -> E {
        E::custom(format_args!(
            "invalid configuration `{}`: expected a map of its variables, found {found}",
            self.spec.name
        ))
    }
}

impl<'de> Visitor<'de> for SectionVisitor {
    type Value = Section;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a map of the variables of `{}`", self.spec.name)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Section, A::Error> {
        let mut section = Section::new(self.spec);
        while let Some(key) = map.next_key::<Key>()? {
            let found = key.0.as_deref().and_then(|k| variable_for(self.spec, k));
            let (Some(key), Some((index, full_name))) = (key.0, found) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value = map.next_value_seed(ValueVisitor)?;
            section.insert(
                index,
                Entry {
                    key,
                    full_name,
                    value,
                },
            );
        }
        Ok(section)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Section, E> {
        Ok(Section::new(self.spec))
    }

    fn visit_none<E: de::Error>(self) -> Result<Section, E> {
        Ok(Section::new(self.spec))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Section, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Section, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Section, E> {
        Err(self.not_a_map("a bool"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Section, E> {
        Err(self.not_a_map("a number"))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Section, E> {
        Err(self.not_a_map("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Section, E> {
        Err(self.not_a_map("a number"))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Section, E> {
        Err(self.not_a_map("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Section, E> {
        Err(self.not_a_map("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Section, E> {
        Err(self.not_a_map("a string"))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Section, E> {
        Err(self.not_a_map("bytes"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Section, A::Error> {
        Err(self.not_a_map("a sequence"))
    }
}

/// A map key: `None` for one that is not text (it names no variable).
struct Key(Option<String>);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_any(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a variable name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(Some(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
        Ok(Key(Some(v)))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key, E> {
        Ok(Key(std::str::from_utf8(v).ok().map(str::to_owned)))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Key, E> {
        Ok(Key(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Key, E> {
        Ok(Key(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Key, E> {
        Ok(Key(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Key, E> {
        Ok(Key(None))
    }
}

/// Visits one variable's value.
struct ValueVisitor;

impl<'de> DeserializeSeed<'de> for ValueVisitor {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a number or a bool")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Text(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Text(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Text(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Text(v.to_string()))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(Value::Text(v.to_string()))
    }

    // `Debug` keeps the point (`6380.0`), so an integer setting refuses a float with the usual
    // message and a float setting reads it back exactly.
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<Value, E> {
        Ok(Value::Text(format!("{v:?}")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Text(format!("{v:?}")))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Value, E> {
        Ok(Value::Text(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(match std::str::from_utf8(v) {
            Ok(text) => Value::Text(text.to_owned()),
            Err(_) => Value::NotScalar("bytes that are not UTF-8"),
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Unset)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Unset)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Value::NotScalar("a sequence"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Value::NotScalar("a map"))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        IgnoredAny.visit_enum(data)?;
        Ok(Value::NotScalar("an enum"))
    }
}

#[cfg(test)]
mod tests;
