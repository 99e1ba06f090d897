//! Parsing of `#[azure_redis(...)]` attributes into raw values, before any meaning is checked.

use proc_macro2::Span;
use syn::parse::ParseStream;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, LitStr, Token, UnOp};

use crate::ctxt::{Ctxt, did_you_mean};

pub const CONTAINER_KEYS: &[&str] = &["auth", "prefix", "crate"];
pub const FIELD_KEYS: &[&str] = &["env", "default", "role", "skip"];

/// One auth type name as written, with its span.
pub struct AuthName {
    pub name: String,
    pub span: Span,
}

/// The container attribute's values.
#[derive(Default)]
pub struct ContainerAttrs {
    /// `auth = "..."` or `auth(a, b)`, and the span of the whole key for messages.
    pub auth: Option<(Vec<AuthName>, Span)>,
    pub prefix: Option<LitStr>,
    pub krate: Option<syn::Path>,
}

/// A `default = ...` literal, possibly negative.
pub struct DefaultLit {
    pub lit: Lit,
    pub negative: bool,
    pub expr: Expr,
}

impl DefaultLit {
    /// The default as text, as it appears in `Variable::default`.
    pub fn text(&self) -> String {
        let sign = if self.negative { "-" } else { "" };
        match &self.lit {
            Lit::Str(s) => s.value(),
            Lit::Int(i) => format!("{sign}{}", i.base10_digits()),
            Lit::Float(f) => format!("{sign}{}", f.base10_digits()),
            Lit::Bool(b) => b.value.to_string(),
            Lit::Char(c) => c.value().to_string(),
            other => quote::quote!(#other).to_string(),
        }
    }
}

/// A field attribute's values.
#[derive(Default)]
pub struct FieldAttrs {
    pub env: Option<LitStr>,
    pub default: Option<DefaultLit>,
    pub role: Option<LitStr>,
    pub skip: Option<Span>,
}

fn unknown_key(cx: &Ctxt, meta: &syn::meta::ParseNestedMeta, accepted: &[&str]) -> syn::Result<()> {
    let path = &meta.path;
    let key = quote::quote!(#path).to_string().replace(' ', "");
    let hint = match did_you_mean(&key, accepted.iter().copied()) {
        Some(close) => format!("; did you mean `{close}`?"),
        None => String::new(),
    };
    cx.error_spanned_by(
        &meta.path,
        format!(
            "unknown attribute `{key}`{hint} (accepted here: {})",
            accepted.join(", ")
        ),
    );
    // Consume the value so the rest of the attribute is still read.
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

fn parse_auth_list(input: ParseStream) -> syn::Result<Vec<AuthName>> {
    let content;
    syn::parenthesized!(content in input);
    let items = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    items
        .into_iter()
        .map(|item| match &item {
            Expr::Path(p) if p.path.get_ident().is_some() => Ok(AuthName {
                name: p
                    .path
                    .get_ident()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                span: syn::spanned::Spanned::span(&item),
            }),
            Expr::Lit(ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(AuthName {
                name: s.value(),
                span: s.span(),
            }),
            _ => Err(syn::Error::new_spanned(
                &item,
                "expected an auth type name, such as `system_identity`",
            )),
        })
        .collect()
}

fn parse_default(input: ParseStream) -> syn::Result<DefaultLit> {
    let expr: Expr = input.parse()?;
    let found = match &expr {
        Expr::Lit(ExprLit { lit, .. }) => Some((lit.clone(), false)),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit {
                lit: lit @ (Lit::Int(_) | Lit::Float(_)),
                ..
            }) => Some((lit.clone(), true)),
            _ => None,
        },
        _ => None,
    };
    match found {
        Some((lit, negative)) => Ok(DefaultLit {
            lit,
            negative,
            expr,
        }),
        None => Err(syn::Error::new_spanned(
            &expr,
            "`default` takes a literal, such as `default = 6380` or `default = \"0.0.0.0:8080\"`",
        )),
    }
}

fn each_attr(
    cx: &Ctxt,
    attrs: &[Attribute],
    mut f: impl FnMut(syn::meta::ParseNestedMeta) -> syn::Result<()>,
) {
    for attr in attrs.iter().filter(|a| a.path().is_ident("azure_redis")) {
        if let syn::Meta::Path(_) = attr.meta {
            cx.error_spanned_by(
                attr,
                "expected `#[azure_redis(...)]` with settings in parentheses",
            );
            continue;
        }
        if let Err(e) = attr.parse_nested_meta(&mut f) {
            cx.syn_error(e);
        }
    }
}

fn set_once<T>(cx: &Ctxt, slot: &mut Option<T>, value: T, path: &syn::Path) {
    if slot.is_some() {
        cx.error_spanned_by(path, "this attribute is given twice");
    }
    *slot = Some(value);
}

pub fn container(cx: &Ctxt, attrs: &[Attribute]) -> ContainerAttrs {
    let mut out = ContainerAttrs::default();
    each_attr(cx, attrs, |meta| {
        if meta.path.is_ident("auth") {
            let span = syn::spanned::Spanned::span(&meta.path);
            let names = if meta.input.peek(Token![=]) {
                let lit: LitStr = meta.value()?.parse()?;
                lit.value()
                    .split(',')
                    .map(|name| AuthName {
                        name: name.trim().to_owned(),
                        span: lit.span(),
                    })
                    .collect()
            } else {
                parse_auth_list(meta.input)?
            };
            set_once(cx, &mut out.auth, (names, span), &meta.path);
        } else if meta.path.is_ident("prefix") {
            let lit: LitStr = meta.value()?.parse()?;
            set_once(cx, &mut out.prefix, lit, &meta.path);
        } else if meta.path.is_ident("crate") {
            let lit: LitStr = meta.value()?.parse()?;
            let path = lit.parse::<syn::Path>()?;
            set_once(cx, &mut out.krate, path, &meta.path);
        } else {
            unknown_key(cx, &meta, CONTAINER_KEYS)?;
        }
        Ok(())
    });
    out
}

/// The path of `#[azure_redis(crate = "...")]` if it reads, else `::azure_redis_connect`: for
/// the fallback, which must name the runtime even when the attributes hold errors.
pub fn crate_path(attrs: &[Attribute]) -> syn::Path {
    let mut found = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("azure_redis")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                found = found.take().or(lit.parse::<syn::Path>().ok());
            } else if meta.input.peek(Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _ = meta.parse_nested_meta(|_| Ok(()));
            }
            Ok(())
        });
    }
    found.unwrap_or_else(|| syn::parse_quote!(::azure_redis_connect))
}

pub fn field(cx: &Ctxt, attrs: &[Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    each_attr(cx, attrs, |meta| {
        if meta.path.is_ident("env") {
            let lit: LitStr = meta.value()?.parse()?;
            set_once(cx, &mut out.env, lit, &meta.path);
        } else if meta.path.is_ident("default") {
            let value = parse_default(meta.value()?)?;
            set_once(cx, &mut out.default, value, &meta.path);
        } else if meta.path.is_ident("role") {
            let lit: LitStr = meta.value()?.parse()?;
            set_once(cx, &mut out.role, lit, &meta.path);
        } else if meta.path.is_ident("skip") {
            let span = syn::spanned::Spanned::span(&meta.path);
            set_once(cx, &mut out.skip, span, &meta.path);
        } else {
            unknown_key(cx, &meta, FIELD_KEYS)?;
        }
        Ok(())
    });
    out
}
