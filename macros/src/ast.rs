//! The struct as a model: each field with its binding, each part keeping its syn original for
//! spans.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Fields, GenericArgument, Ident, LitStr, PathArguments, Type};

use crate::attr::{self, AuthName, DefaultLit};
use crate::ctxt::{Ctxt, did_you_mean};
use crate::model::{self, AuthKind, Role};

pub struct Config<'a> {
    pub input: &'a DeriveInput,
    pub ident: &'a Ident,
    /// The listed auth types (`None`: detect at run time) and the span of `auth`.
    pub auth: Option<(Vec<(&'static AuthKind, Span)>, Span)>,
    pub prefix: String,
    pub krate: syn::Path,
    pub fields: Vec<Field<'a>>,
}

pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    /// `T` of `Option<T>`, or the type itself.
    pub inner: &'a Type,
    pub optional: bool,
    /// The type is a secret type (`SecretString`, `SecretBox<..>`).
    pub secret_type: bool,
    pub role: Option<&'static Role>,
    /// The variable read, and the span to point at for it.
    pub env: Option<(String, Span)>,
    pub env_attr: Option<LitStr>,
    pub default: Option<DefaultLit>,
    pub skip: bool,
    /// Its attributes had errors (already reported): later checks leave it alone.
    pub attr_error: bool,
}

impl Field<'_> {
    /// The inner type as text, for messages and `Variable::ty`.
    pub fn type_text(&self) -> String {
        let inner = self.inner;
        quote::quote!(#inner).to_string().replace(' ', "")
    }
}

/// `Some(T)` if `ty` is `Option<T>` (also `std::option::Option<T>`).
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(inner) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

/// The last path segment's name of a type, such as `SecretString`.
pub fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

fn is_secret_type(ty: &Type) -> bool {
    matches!(
        last_ident(ty).as_deref(),
        Some("SecretString" | "SecretBox" | "Secret")
    )
}

/// Checks a variable or prefix name: letters, digits, `_` and `.`, not starting with a digit.
pub fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("it is empty".into()),
        Some(c) if c.is_ascii_digit() => return Err("it starts with a digit".into()),
        _ => {}
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
    {
        Some(c) => Err(format!(
            "it contains {c:?}; use letters, digits and `_` (a `.` is allowed for Spring names)"
        )),
        None => Ok(()),
    }
}

fn auth_kinds(cx: &Ctxt, names: Vec<AuthName>) -> Vec<(&'static AuthKind, Span)> {
    let mut kinds: Vec<(&'static AuthKind, Span)> = Vec::new();
    if names.iter().all(|n| n.name.is_empty()) {
        if let Some(first) = names.first() {
            cx.syn_error(syn::Error::new(
                first.span,
                "name at least one auth type, such as `auth = \"system_identity\"`",
            ));
        }
        return kinds;
    }
    for AuthName { name, span } in names {
        let normalized = name.trim().to_ascii_lowercase().replace('-', "_");
        match model::auth_named(&normalized) {
            Some(kind) if kinds.iter().any(|(k, _)| k == &kind) => cx.syn_error(syn::Error::new(
                span,
                format!("auth type `{}` is listed twice", kind.name),
            )),
            Some(kind) => kinds.push((kind, span)),
            None => {
                let names = model::AUTH_KINDS.iter().map(|k| k.name);
                let hint = model::ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == normalized)
                    .map(|(_, s)| (*s).to_owned())
                    .or_else(|| did_you_mean(&normalized, names).map(|s| format!("`{s}`")));
                let hint = match hint {
                    Some(hint) => format!("; did you mean {hint}?"),
                    None => String::new(),
                };
                let all: Vec<_> = model::AUTH_KINDS.iter().map(|k| k.name).collect();
                cx.syn_error(syn::Error::new(
                    span,
                    format!(
                        "unknown auth type `{name}`{hint}\n  known auth types: {}",
                        all.join(", ")
                    ),
                ));
            }
        }
    }
    kinds
}

impl<'a> Config<'a> {
    /// Reads the struct; `None` if it is not a struct with named fields (the error is recorded).
    pub fn from_input(cx: &Ctxt, input: &'a DeriveInput) -> Option<Config<'a>> {
        let attrs = attr::container(cx, &input.attrs);
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => &named.named,
                Fields::Unnamed(_) => {
                    cx.error_spanned_by(
                        &input.ident,
                        "`AzureRedisConfig` needs named fields: each field's name says which variable it reads; write `struct Name { host: String, ... }`",
                    );
                    return None;
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        &input.ident,
                        "`AzureRedisConfig` needs a struct with named fields, at least `host: String`",
                    );
                    return None;
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    "`AzureRedisConfig` can only be derived for a struct with named fields, not an enum; to choose among auth types, list them: `#[azure_redis(auth(system_identity, developer_tools))]`",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "`AzureRedisConfig` can only be derived for a struct with named fields, not a union",
                );
                return None;
            }
        };
        if let Some(param) = input.generics.params.first() {
            cx.error_spanned_by(
                &input.generics,
                format!(
                    "`AzureRedisConfig` does not support generic structs (found `{}`): each field must have a concrete type to parse its variable into",
                    match param {
                        syn::GenericParam::Lifetime(l) => l.lifetime.to_string(),
                        syn::GenericParam::Type(t) => t.ident.to_string(),
                        syn::GenericParam::Const(c) => c.ident.to_string(),
                    }
                ),
            );
        }

        let auth = attrs
            .auth
            .map(|(names, span)| (auth_kinds(cx, names), span));
        let only_spring = matches!(&auth, Some((kinds, _)) if kinds.len() == 1 && kinds[0].0.name == "spring_boot");
        let prefix = match &attrs.prefix {
            Some(lit) => {
                let value = lit.value();
                if let Err(why) = check_env_name(&value) {
                    cx.error_spanned_by(lit, format!("invalid prefix `{value}`: {why}"));
                } else if !value.ends_with(['_', '.']) {
                    cx.error_spanned_by(
                        lit,
                        format!(
                            "invalid prefix `{value}`: it must end with `_` (variables are named `<prefix>HOST`); did you mean `{value}_`?"
                        ),
                    );
                }
                value
            }
            None if only_spring => model::SPRING_PREFIX.to_owned(),
            None => model::DEFAULT_PREFIX.to_owned(),
        };
        let krate = attrs
            .krate
            .unwrap_or_else(|| syn::parse_quote!(::azure_redis_connect));

        let fields = fields
            .iter()
            .filter_map(|field| {
                let ident = field.ident.as_ref()?;
                let errors_before = cx.count();
                let attrs = attr::field(cx, &field.attrs);
                let (inner, optional) = match option_inner(&field.ty) {
                    Some(inner) => (inner, true),
                    None => (&field.ty, false),
                };
                let name = ident.to_string();
                let name = name.strip_prefix("r#").unwrap_or(&name);
                let role = match &attrs.role {
                    Some(lit) => {
                        let wanted = lit.value();
                        let role = model::role_named(&wanted);
                        if role.is_none() {
                            let hint = did_you_mean(&wanted, model::ROLES.iter().map(|r| r.name))
                                .map(|s| format!("; did you mean `{s}`?"))
                                .unwrap_or_default();
                            let all: Vec<_> = model::ROLES.iter().map(|r| r.name).collect();
                            cx.error_spanned_by(
                                lit,
                                format!(
                                    "unknown role `{wanted}`{hint}\n  known roles: {}",
                                    all.join(", ")
                                ),
                            );
                        }
                        role
                    }
                    None => model::role_named(name),
                };
                if let Some(env) = &attrs.env
                    && let Err(why) = check_env_name(&env.value())
                {
                    cx.error_spanned_by(
                        env,
                        format!("invalid variable name `{}`: {why}", env.value()),
                    );
                }
                let skip = attrs.skip.is_some();
                let env = if skip {
                    None
                } else if let Some(lit) = &attrs.env {
                    Some((lit.value(), lit.span()))
                } else {
                    role.map(|r| (r.env(&prefix), ident.span()))
                };
                Some(Field {
                    ident,
                    ty: &field.ty,
                    inner,
                    optional,
                    secret_type: is_secret_type(inner),
                    role,
                    env,
                    env_attr: attrs.env,
                    default: attrs.default,
                    skip,
                    attr_error: cx.count() > errors_before,
                })
            })
            .collect();

        Some(Config {
            input,
            ident: &input.ident,
            auth,
            prefix,
            krate,
            fields,
        })
    }

    /// The auth types the struct may use: the listed ones, or (detection) those whose every
    /// required role has a field.
    pub fn allowed(&self) -> Vec<&'static AuthKind> {
        match &self.auth {
            Some((kinds, _)) => kinds.iter().map(|(k, _)| *k).collect(),
            None => model::DETECTED
                .iter()
                .filter_map(|name| model::auth_named(name))
                .filter(|kind| {
                    kind.required
                        .iter()
                        .all(|role| self.field_for(role).is_some())
                })
                .collect(),
        }
    }

    /// The field that fills a role.
    pub fn field_for(&self, role: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|f| !f.skip && f.role.is_some_and(|r| r.name == role))
    }
}
