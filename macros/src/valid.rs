//! Every compile-time check, each error pointing at the span at fault.

use std::collections::HashMap;

use syn::Lit;

use crate::ast::{Config, Field, last_ident};
use crate::ctxt::{Ctxt, did_you_mean};
use crate::model;

pub fn check(cx: &Ctxt, config: &Config) {
    check_bindings(cx, config);
    check_duplicates(cx, config);
    for field in config.fields.iter().filter(|f| !f.skip) {
        check_secret(cx, field);
        check_role_type(cx, field);
        check_default(cx, field);
    }
    check_auth(cx, config);
}

/// Every field binds to a variable (by role name or `env`), or is skipped.
fn check_bindings(cx: &Ctxt, config: &Config) {
    for field in &config.fields {
        if field.skip {
            if let Some(env) = &field.env_attr {
                cx.error_spanned_by(
                    env,
                    "a `skip`ped field reads no variable; remove `env` or `skip`",
                );
            }
            if let Some(default) = &field.default {
                cx.error_spanned_by(
                    &default.expr,
                    "a `skip`ped field takes `Default::default()`; remove `default` or `skip`",
                );
            }
            continue;
        }
        if field.env.is_some() || field.attr_error {
            continue;
        }
        let name = field.ident.to_string();
        let hint = match did_you_mean(&name, model::ROLES.iter().map(|r| r.name)) {
            Some(role) => format!("did you mean to name it `{role}`? Otherwise "),
            None => String::new(),
        };
        let roles: Vec<_> = model::ROLES.iter().map(|r| r.name).collect();
        cx.error_spanned_by(
            field.ident,
            format!(
                "field `{name}` reads no variable: its name is not one of the settings ({})\n  {hint}give it a variable with `#[azure_redis(env = \"NAME\")]`, or `#[azure_redis(skip)]` to fill it with `Default::default()`",
                roles.join(", ")
            ),
        );
    }
}

/// No two fields read one variable or fill one role.
fn check_duplicates(cx: &Ctxt, config: &Config) {
    let mut by_env: HashMap<&str, &Field> = HashMap::new();
    let mut by_role: HashMap<&str, &Field> = HashMap::new();
    for field in config.fields.iter().filter(|f| !f.skip) {
        if let Some((env, span)) = &field.env {
            match by_env.get(env.as_str()) {
                Some(first) => cx.syn_error(syn::Error::new(
                    *span,
                    format!(
                        "`{env}` is already read by field `{}`; two fields cannot read one variable",
                        first.ident
                    ),
                )),
                None => {
                    by_env.insert(env, field);
                }
            }
        }
        if let Some(role) = field.role {
            match by_role.get(role.name) {
                Some(first) => cx.error_spanned_by(
                    field.ident,
                    format!(
                        "field `{}` and field `{}` both fill the `{}` setting; keep one",
                        first.ident, field.ident, role.name
                    ),
                ),
                None => {
                    by_role.insert(role.name, field);
                }
            }
        }
    }
}

/// A secret setting lives in a secret type, so that `Debug` and logs never show it.
fn check_secret(cx: &Ctxt, field: &Field) {
    let Some(role) = field.role else { return };
    if role.secret && !field.secret_type {
        let wanted = if field.optional {
            "Option<SecretString>"
        } else {
            "SecretString"
        };
        cx.error_spanned_by(
            field.ty,
            format!(
                "`{}` holds a secret, so a `{}` would show it in Debug output and logs; declare it as `{wanted}` (re-exported as `azure_redis_connect::SecretString`)",
                field.ident,
                field.type_text()
            ),
        );
    }
}

/// Types the macro can tell apart by name; anything else (an alias, say) is left to the
/// compiler's `RoleValue` check.
const WELL_KNOWN: &[&str] = &[
    "String",
    "str",
    "bool",
    "char",
    "f32",
    "f64",
    "PathBuf",
    "SocketAddr",
    "IpAddr",
    "Duration",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "usize",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "isize",
];

/// A role field has the type the setting is read as.
fn check_role_type(cx: &Ctxt, field: &Field) {
    let Some(role) = field.role else { return };
    if role.secret {
        return;
    }
    let Some(ty) = last_ident(field.inner) else {
        return;
    };
    let fits = match role.name {
        "database" => INTEGERS.iter().any(|(name, _, _)| *name == ty),
        _ => ty == role.ty,
    };
    if !fits && WELL_KNOWN.contains(&ty.as_str()) {
        let wanted = match role.name {
            "database" => "an integer type such as `u32`".to_owned(),
            _ => format!("`{}` (or `Option<{}>`)", role.ty, role.ty),
        };
        cx.error_spanned_by(
            field.inner,
            format!(
                "the `{}` setting is read as {wanted}, not `{}`",
                role.name,
                field.type_text()
            ),
        );
    }
}

const INTEGERS: &[(&str, i128, u128)] = &[
    ("u8", 0, u8::MAX as u128),
    ("u16", 0, u16::MAX as u128),
    ("u32", 0, u32::MAX as u128),
    ("u64", 0, u64::MAX as u128),
    ("u128", 0, u128::MAX),
    ("usize", 0, u64::MAX as u128),
    ("i8", i8::MIN as i128, i8::MAX as u128),
    ("i16", i16::MIN as i128, i16::MAX as u128),
    ("i32", i32::MIN as i128, i32::MAX as u128),
    ("i64", i64::MIN as i128, i64::MAX as u128),
    ("i128", i128::MIN, i128::MAX as u128),
    ("isize", i64::MIN as i128, i64::MAX as u128),
];

/// A `default` literal fits the field's type, where the macro can tell.
fn check_default(cx: &Ctxt, field: &Field) {
    let Some(default) = &field.default else {
        return;
    };
    let at = &default.expr;
    if field.optional {
        cx.error_spanned_by(
            at,
            format!(
                "field `{}` is an `Option` and has a default, so it would never be `None`; drop the `Option` or the default",
                field.ident
            ),
        );
        return;
    }
    if field.secret_type {
        cx.error_spanned_by(
            at,
            "a secret cannot have a default written in the source; set its variable instead",
        );
        return;
    }
    let ty = last_ident(field.inner).unwrap_or_default();
    let ty = ty.as_str();
    let text = default.text();
    let mismatch = |what: &str| {
        cx.error_spanned_by(
            at,
            format!(
                "default {} does not fit field `{}` of type `{}`: {what}",
                quote::quote!(#at).to_string().replace(' ', ""),
                field.ident,
                field.type_text()
            ),
        )
    };
    if let Some((_, min, max)) = INTEGERS.iter().find(|(name, _, _)| *name == ty) {
        let fits = match &default.lit {
            Lit::Int(_) | Lit::Str(_) => match text.parse::<i128>() {
                Ok(v) => v >= *min && (v < 0 || (v as u128) <= *max),
                Err(_) => text.parse::<u128>().is_ok_and(|v| v <= *max),
            },
            _ => false,
        };
        if !fits {
            mismatch(&format!("expected an integer from {min} to {max}"));
        }
    } else if ty == "bool" {
        if !matches!(text.as_str(), "true" | "false") || matches!(default.lit, Lit::Int(_)) {
            mismatch("expected `true` or `false`");
        }
    } else if matches!(ty, "f32" | "f64") {
        if text.parse::<f64>().is_err() {
            mismatch("expected a number");
        }
    } else if ty == "String" || ty == "PathBuf" {
        if !matches!(default.lit, Lit::Str(_)) {
            mismatch(&format!(
                "expected a string literal, such as `default = \"{text}\"`"
            ));
        }
    } else if ty == "char" {
        if text.chars().count() != 1 {
            mismatch("expected one character");
        }
    } else if let Lit::Str(_) = default.lit {
        // Any other type parses the text with `FromStr` at run time.
    } else if !matches!(default.lit, Lit::Int(_) | Lit::Float(_) | Lit::Bool(_)) {
        mismatch("expected a string, number or boolean literal");
    }
}

/// The listed auth types have every field they need, with fitting optionality.
fn check_auth(cx: &Ctxt, config: &Config) {
    let allowed = config.allowed();
    let describe = |role: &model::Role| {
        format!(
            "`{}: {}` (reads {})",
            role.name,
            role.ty,
            role.env(&config.prefix)
        )
    };
    match &config.auth {
        Some((kinds, _)) => {
            if kinds.len() > 1
                && let Some((_, span)) = kinds.iter().find(|(k, _)| k.name == "spring_boot")
            {
                cx.syn_error(syn::Error::new(
                    *span,
                    "`spring_boot` reads the SPRING_REDIS_* names and cannot be listed with other auth types; use `access_key` with a prefix, or a struct of its own",
                ));
            }
            for (kind, span) in kinds {
                let missing: Vec<String> = kind
                    .required
                    .iter()
                    .filter(|role| config.field_for(role).is_none())
                    .filter_map(|role| model::role_named(role))
                    .map(describe)
                    .collect();
                if !missing.is_empty() {
                    cx.syn_error(syn::Error::new(
                        *span,
                        format!(
                            "auth type `{}` needs {} that `{}` does not have:\n  {}",
                            kind.name,
                            if missing.len() == 1 {
                                "a field"
                            } else {
                                "fields"
                            },
                            config.ident,
                            missing.join("\n  ")
                        ),
                    ));
                }
            }
        }
        // A field with a reported binding error may be the one that was meant to count.
        None if allowed.is_empty()
            && config
                .fields
                .iter()
                .all(|f| !f.attr_error && (f.skip || f.env.is_some())) =>
        {
            let host = model::role_named("host").map(describe).unwrap_or_default();
            let cs = model::role_named("connection_string")
                .map(describe)
                .unwrap_or_default();
            cx.error_spanned_by(
                config.ident,
                format!(
                    "no auth type can work with the fields of `{}`: add {host} for a managed identity, or {cs}; or name the auth type with `#[azure_redis(auth = \"...\")]`",
                    config.ident
                ),
            );
        }
        None => {}
    }
    // With several auth types, a setting only some of them need may be unset at run time.
    if allowed.len() > 1 {
        for field in config
            .fields
            .iter()
            .filter(|f| !f.skip && !f.optional && f.default.is_none())
        {
            let Some(role) = field.role else { continue };
            let needed_by_some = allowed.iter().any(|k| k.required.contains(&role.name));
            let unneeded_by = allowed.iter().find(|k| !k.required.contains(&role.name));
            if let (true, Some(other)) = (needed_by_some, unneeded_by) {
                cx.error_spanned_by(
                    field.ty,
                    format!(
                        "`{}` is not set under auth type `{}`, which this struct also accepts; declare it as `Option<{}>`",
                        field.ident,
                        other.name,
                        field.type_text()
                    ),
                );
            }
        }
    }
}
