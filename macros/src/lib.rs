//! `#[derive(AzureRedisConfig)]`: binds a configuration struct to the variables Azure Service
//! Connector injects and checks at compile time that the chosen auth type has what it needs.
//!
//! Use it through the `azure-redis-connect` crate, which re-exports it and documents the
//! attributes. The stages: `ast` reads the struct and its attributes into a model whose parts
//! keep their spans, `valid` runs every check and collects all errors, `expand` writes the
//! impl, and `fallback` emits the errors with a stub impl, so that code calling the generated
//! methods does not pile up follow-on errors.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod fallback;
mod model;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// The runtime's hidden module the generated code names, `<crate>::__private_<major>_<minor>`:
/// versioned, so that a macro and a runtime of different versions fail loudly. `expand` and
/// `fallback` both go through it.
pub(crate) fn private_path(krate: &syn::Path) -> proc_macro2::TokenStream {
    let module = quote::format_ident!(
        "__private_{}_{}",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    quote::quote!(#krate::#module)
}

/// Derives `azure_redis_connect::AzureRedisConfig`; see that crate for the attributes.
#[proc_macro_derive(AzureRedisConfig, attributes(azure_redis))]
pub fn derive_azure_redis_config(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let cx = ctxt::Ctxt::default();
    let config = ast::Config::from_input(&cx, &input);
    if let Some(config) = &config {
        valid::check(&cx, config);
    }
    // `None` means an error was recorded.
    let Some(config) = config else {
        return fallback::expand(&input, cx.check().unwrap_err()).into();
    };
    match cx.check() {
        Ok(()) => expand::expand(&config).into(),
        Err(error) => fallback::expand(&input, error).into(),
    }
}
