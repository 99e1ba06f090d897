//! Variable sources, the description of each bound variable, and the reader the derive calls.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::str::FromStr;

use super::{ConfigError, ConfigSpec, Problem, Role, Settings, resolve};

/// A set of variables to read a configuration from: the process environment or given pairs.
///
/// ```
/// use azure_redis_connect::config::VarSource;
/// let vars: VarSource = [("AZURE_REDIS_HOST", "localhost")].into_iter().collect();
/// assert_eq!(vars.get("AZURE_REDIS_HOST").unwrap(), "localhost");
/// ```
#[derive(Clone, Default)]
pub struct VarSource {
    vars: HashMap<OsString, OsString>,
}

impl VarSource {
    /// A snapshot of the process environment.
    pub fn from_env() -> VarSource {
        std::env::vars_os().collect()
    }

    /// The value of a variable, if set.
    pub fn get(&self, name: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(name)).map(OsString::as_os_str)
    }
}

impl fmt::Debug for VarSource {
    /// Lists the names only: values may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("VarSource").field("names", &names).finish()
    }
}

impl<K: AsRef<OsStr>, V: AsRef<OsStr>> FromIterator<(K, V)> for VarSource {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let vars = iter
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        VarSource { vars }
    }
}

/// One field of a derived configuration and the variable it reads.
///
/// `Display` gives a line for a `--help` text or a startup log:
/// `AZURE_REDIS_PORT  port: u16 (default 6380)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Variable {
    /// The field's name.
    pub field: &'static str,
    /// The variable's full name.
    pub env: &'static str,
    /// The role the field fills, if any.
    pub role: Option<Role>,
    /// The field's type (the inner type for `Option<T>`).
    pub ty: &'static str,
    /// Whether the value is a secret (never shown).
    pub secret: bool,
    /// Whether the field is an `Option`.
    pub optional: bool,
    /// The default, as written in the attribute.
    pub default: Option<&'static str>,
}

impl Variable {
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        field: &'static str,
        env: &'static str,
        role: Option<Role>,
        ty: &'static str,
        secret: bool,
        optional: bool,
        default: Option<&'static str>,
    ) -> Variable {
        Variable {
            field,
            env,
            role,
            ty,
            secret,
            optional,
            default,
        }
    }
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}: {}", self.env, self.field, self.ty)?;
        match (self.default, self.optional, self.secret) {
            (Some(default), _, _) => write!(f, " (default {default})"),
            (None, true, true) => f.write_str(" (optional, secret)"),
            (None, true, false) => f.write_str(" (optional)"),
            (None, false, true) => f.write_str(" (secret)"),
            (None, false, false) => Ok(()),
        }
    }
}

/// What reading one variable gave. Not part of the public API.
#[doc(hidden)]
#[derive(Debug)]
pub enum Read<T> {
    /// The variable is not set.
    Unset,
    /// The variable's value.
    Set(T),
    /// The variable is set but unusable; the problem is recorded.
    Invalid,
}

impl<T> Read<T> {
    /// The value mapped by `f`.
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Read<U> {
        match self {
            Read::Unset => Read::Unset,
            Read::Set(value) => Read::Set(f(value)),
            Read::Invalid => Read::Invalid,
        }
    }
}

/// Reads and parses each field's variable for the derived `from_var_source`, collecting every
/// problem. Not part of the public API.
#[doc(hidden)]
pub struct Reader<'a> {
    spec: &'static ConfigSpec,
    vars: &'a VarSource,
    problems: Vec<Problem>,
    /// The role values read so far.
    pub settings: Settings,
}

impl<'a> Reader<'a> {
    pub fn new(spec: &'static ConfigSpec, vars: &'a VarSource) -> Reader<'a> {
        Reader {
            spec,
            vars,
            problems: Vec::new(),
            settings: Settings::default(),
        }
    }

    /// The variable's text; [`Read::Invalid`] (a problem recorded) when not UTF-8.
    fn text(&mut self, index: usize) -> Read<String> {
        let var = &self.spec.variables[index];
        let Some(raw) = self.vars.get(var.env) else {
            return Read::Unset;
        };
        let Some(text) = raw.to_str() else {
            self.problems.push(Problem::NotUnicode { var: var.env });
            return Read::Invalid;
        };
        let text = if var.secret { text } else { text.trim() };
        // Azure writes `True` / `False`; Rust's `bool` parses only lower case.
        if var.ty == "bool" {
            return Read::Set(text.to_ascii_lowercase());
        }
        Read::Set(text.to_owned())
    }

    /// Parses the variable with `FromStr`; [`Read::Invalid`] (a problem recorded) when it
    /// does not parse.
    pub fn parse<T>(&mut self, index: usize) -> Read<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let text = match self.text(index) {
            Read::Set(text) => text,
            Read::Unset => return Read::Unset,
            Read::Invalid => return Read::Invalid,
        };
        let var = &self.spec.variables[index];
        match text.parse::<T>() {
            Ok(value) => Read::Set(value),
            Err(error) => {
                self.problems.push(Problem::Invalid {
                    var: var.env,
                    expected: var.ty,
                    value: (!var.secret).then_some(text),
                    reason: error.to_string(),
                });
                Read::Invalid
            }
        }
    }

    /// Reads a secret: any type built `From<String>`, such as [`SecretString`](secrecy::SecretString).
    pub fn secret<T: From<String>>(&mut self, index: usize) -> Read<T> {
        self.text(index).map(T::from)
    }

    /// The value of an optional field: `Some(None)` when unset, `None` when unusable.
    pub fn optional<T>(&mut self, value: Read<T>) -> Option<Option<T>> {
        match value {
            Read::Unset => Some(None),
            Read::Set(value) => Some(Some(value)),
            Read::Invalid => None,
        }
    }

    /// A value that must be set.
    pub fn required<T>(&mut self, index: usize, value: Read<T>) -> Option<T> {
        match value {
            Read::Unset => {
                let var = &self.spec.variables[index];
                self.problems.push(Problem::Missing {
                    var: var.env,
                    field: Some(var.field),
                    needed_by: None,
                });
                None
            }
            Read::Set(value) => Some(value),
            Read::Invalid => None,
        }
    }

    /// A value with a default of the field's type.
    pub fn or_default<T>(&mut self, value: Read<T>, default: impl FnOnce() -> T) -> Option<T> {
        match value {
            Read::Unset => Some(default()),
            Read::Set(value) => Some(value),
            Read::Invalid => None,
        }
    }

    /// A value with a default written as text and parsed with `FromStr` when needed.
    pub fn or_default_str<T>(&mut self, index: usize, value: Read<T>) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let var = &self.spec.variables[index];
        match value {
            Read::Invalid => None,
            Read::Set(value) => Some(value),
            Read::Unset => match var.default.unwrap_or_default().parse::<T>() {
                Ok(value) => Some(value),
                Err(error) => {
                    self.problems.push(Problem::BadDefault {
                        field: var.field,
                        expected: var.ty,
                        reason: error.to_string(),
                    });
                    None
                }
            },
        }
    }

    /// Checks the auth choice against the role values read, then hands over the config built
    /// from the fields (`None` when a field could not be read).
    pub fn finish<C>(mut self, config: impl FnOnce() -> Option<C>) -> Result<C, ConfigError> {
        if let Err(problems) = resolve(self.spec, &self.settings) {
            for problem in problems {
                // A variable that already has a problem (unset, unreadable) is reported once.
                let seen = problem
                    .var()
                    .is_some_and(|var| self.problems.iter().any(|p| p.var() == Some(var)));
                if !seen {
                    self.problems.push(problem);
                }
            }
        }
        match config() {
            Some(config) if self.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::new(self.spec.name, self.problems)),
        }
    }
}

/// Converts a field's value to a role's value; implemented for `T` and `Option<T>`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a field of type `{Self}` cannot hold this setting: expected `{T}` or `Option<{T}>`",
    label = "expected `{T}` or `Option<{T}>`"
)]
pub trait RoleValue<T> {
    fn role_value(&self) -> Option<T>;
}

impl<T: Clone> RoleValue<T> for T {
    fn role_value(&self) -> Option<T> {
        Some(self.clone())
    }
}

impl<T: Clone> RoleValue<T> for Option<T> {
    fn role_value(&self) -> Option<T> {
        self.clone()
    }
}

macro_rules! database_types {
    ($($ty:ty),*) => {$(
        impl RoleValue<i64> for $ty {
            fn role_value(&self) -> Option<i64> {
                i64::try_from(*self).ok()
            }
        }
        impl RoleValue<i64> for Option<$ty> {
            fn role_value(&self) -> Option<i64> {
                self.and_then(|v| i64::try_from(v).ok())
            }
        }
    )*};
}
database_types!(u8, u16, u32, u64, i8, i16, i32, usize);
