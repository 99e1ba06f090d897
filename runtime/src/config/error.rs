//! Configuration errors: every problem at once, each naming the variable at fault, never a secret.

use std::fmt;

use super::AuthKind;
use super::connection_string::ConnectionStringError;
use super::endpoint::HostError;

/// Everything wrong with a configuration, found in one pass.
///
/// `Display` lists each problem on its own line, naming the variable and what was expected.
/// Values of secret settings never appear.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    config: &'static str,
    problems: Vec<Problem>,
}

impl ConfigError {
    /// An error for the configuration type named `config` (used in the message).
    pub fn new(config: &'static str, problems: Vec<Problem>) -> ConfigError {
        ConfigError { config, problems }
    }

    /// Each problem found.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The name of the configuration type.
    pub fn config(&self) -> &'static str {
        self.config
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid configuration `{}`: {one}", self.config),
            all => {
                write!(
                    f,
                    "invalid configuration `{}` ({} problems):",
                    self.config,
                    all.len()
                )?;
                for problem in all {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Problem {
    /// A variable that must be set is not.
    Missing {
        /// The variable's full name, such as `AZURE_REDIS_HOST`.
        var: &'static str,
        /// The field it fills, if the struct has one.
        field: Option<&'static str>,
        /// The auth type that needs it, when only that auth type does.
        needed_by: Option<AuthKind>,
    },
    /// A variable whose value is not UTF-8.
    NotUnicode {
        /// The variable's full name.
        var: &'static str,
    },
    /// A variable whose value does not parse as the field's type.
    Invalid {
        /// The variable's full name.
        var: &'static str,
        /// The type expected, such as `u16`.
        expected: &'static str,
        /// The value as given; `None` for secrets, which are never shown.
        value: Option<String>,
        /// Why it does not parse.
        reason: String,
    },
    /// A field's `default` that does not parse as the field's type.
    BadDefault {
        /// The field.
        field: &'static str,
        /// The type expected.
        expected: &'static str,
        /// Why it does not parse.
        reason: String,
    },
    /// A host (or `host:port`) that cannot be read.
    BadHost {
        /// The variable's full name.
        var: &'static str,
        /// What is wrong.
        error: HostError,
    },
    /// A malformed connection string.
    ConnectionString {
        /// The variable's full name.
        var: &'static str,
        /// What is wrong, and where.
        error: ConnectionStringError,
    },
    /// A connection string that parses but carries no password (access key).
    NoPassword {
        /// The variable's full name.
        var: &'static str,
    },
    /// A loader's key for a variable holds a map or a sequence (through serde, the `serde`
    /// feature), where a string, a number or a bool was expected.
    NotScalar {
        /// The variable's full name.
        var: &'static str,
        /// The key as the loader gave it, such as `host`.
        key: String,
        /// What it holds, such as `a map`.
        found: &'static str,
    },
    /// None of the allowed auth types has the variables it needs.
    NoAuthType {
        /// For each allowed auth type, the variables it lacks.
        missing: Vec<(AuthKind, Vec<&'static str>)>,
    },
}

impl Problem {
    /// The variable at fault, if the problem concerns one variable.
    pub fn var(&self) -> Option<&'static str> {
        match self {
            Problem::Missing { var, .. }
            | Problem::NotUnicode { var }
            | Problem::Invalid { var, .. }
            | Problem::BadHost { var, .. }
            | Problem::ConnectionString { var, .. }
            | Problem::NoPassword { var }
            | Problem::NotScalar { var, .. } => Some(var),
            Problem::BadDefault { .. } | Problem::NoAuthType { .. } => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing {
                var,
                field,
                needed_by,
            } => {
                write!(f, "{var} is not set")?;
                match (field, needed_by) {
                    (_, Some(kind)) => write!(f, " (auth type `{kind}` needs it)"),
                    (Some(field), None) => write!(f, " (field `{field}` has no default)"),
                    (None, None) => Ok(()),
                }
            }
            Problem::NotUnicode { var } => write!(f, "{var} is not valid UTF-8"),
            Problem::Invalid {
                var,
                expected,
                value,
                reason,
            } => match value {
                Some(value) => write!(f, "{var}={value:?} is not a valid {expected}: {reason}"),
                None => write!(
                    f,
                    "{var} (secret, not shown) is not a valid {expected}: {reason}"
                ),
            },
            Problem::BadDefault {
                field,
                expected,
                reason,
            } => write!(
                f,
                "the default of field `{field}` is not a valid {expected}: {reason}"
            ),
            Problem::BadHost { var, error } => write!(f, "{var} is not a valid host: {error}"),
            Problem::ConnectionString { var, error } => {
                write!(f, "{var} is not a valid connection string: {error}")
            }
            Problem::NoPassword { var } => write!(
                f,
                "{var} has no password: expected `password=<key>` or `rediss://:<key>@host`"
            ),
            Problem::NotScalar { var, key, found } => write!(
                f,
                "{var} (key `{key}`) is {found}: expected a string, a number or a bool"
            ),
            Problem::NoAuthType { missing } => {
                f.write_str("no auth type can be used with the variables that are set:")?;
                for (i, (kind, vars)) in missing.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}`{kind}` needs {}", vars.join(", "))?;
                }
                Ok(())
            }
        }
    }
}
