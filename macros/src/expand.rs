//! The generated `AzureRedisConfig` impl.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{Lit, spanned::Spanned};

use crate::ast::{Config, Field, last_ident};
use crate::model;

/// The runtime type a role's value is handed over as.
fn role_type(role: &model::Role, p: &TokenStream) -> TokenStream {
    match role.ty {
        "String" => quote!(::std::string::String),
        "u16" => quote!(u16),
        "i64" => quote!(i64),
        "bool" => quote!(bool),
        "SecretString" => quote!(#p::SecretString),
        _ => quote!(::std::path::PathBuf),
    }
}

/// A default written as a literal of the field's own type, checked by the compiler; `None`
/// when the default is text to parse at run time.
fn typed_default(field: &Field) -> Option<TokenStream> {
    let default = field.default.as_ref()?;
    let ty = last_ident(field.inner).unwrap_or_default();
    let expr = &default.expr;
    let inner = field.inner;
    let span = expr.span();
    let natural = match (&default.lit, ty.as_str()) {
        (Lit::Int(_), "u8" | "u16" | "u32" | "u64" | "u128" | "usize")
        | (Lit::Int(_), "i8" | "i16" | "i32" | "i64" | "i128" | "isize")
        | (Lit::Int(_) | Lit::Float(_), "f32" | "f64")
        | (Lit::Bool(_), "bool")
        | (Lit::Char(_), "char") => quote_spanned!(span=> #expr),
        (Lit::Str(_), "String") => quote_spanned!(span=> ::std::string::String::from(#expr)),
        (Lit::Str(_), "PathBuf") => quote_spanned!(span=> ::std::path::PathBuf::from(#expr)),
        _ => return None,
    };
    Some(quote_spanned!(span=> || -> #inner { #natural }))
}

/// `serde::Deserialize` through the runtime's `deserialize`, passed through the runtime's gate,
/// which keeps it only when the runtime has its `serde` feature (which a derive cannot see).
/// `fallback` emits it too, so that a struct with a mistake reports that mistake alone.
pub fn deserialize_impl(p: &TokenStream, ident: &Ident, generics: &syn::Generics) -> TokenStream {
    let mut with_de = generics.clone();
    with_de.params.insert(0, syn::parse_quote!('__de));
    let (impl_generics, _, _) = with_de.split_for_impl();
    let (_, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        #p::serde_impl! {
            #[automatically_derived]
            impl #impl_generics #p::serde::Deserialize<'__de> for #ident #ty_generics #where_clause {
                fn deserialize<__D>(__deserializer: __D) -> #p::Result<Self, __D::Error>
                where
                    __D: #p::serde::Deserializer<'__de>,
                {
                    #p::deserialize::<Self, __D>(__deserializer)
                }
            }
        }
    }
}

pub fn expand(config: &Config) -> TokenStream {
    let krate = &config.krate;
    let p = crate::private_path(krate);
    let ident = config.ident;
    let name = ident.to_string();
    let (impl_generics, ty_generics, where_clause) = config.input.generics.split_for_impl();
    let prefix = &config.prefix;
    let deserialize = deserialize_impl(&p, ident, &config.input.generics);

    let auth_variants = config
        .allowed()
        .into_iter()
        .map(|kind| Ident::new(kind.variant, Span::call_site()));

    let bound: Vec<&Field> = config.fields.iter().filter(|f| !f.skip).collect();
    let variables = bound.iter().map(|field| {
        let field_name = field.ident.to_string();
        let env = field
            .env
            .as_ref()
            .map(|(env, _)| env.as_str())
            .unwrap_or_default();
        let role = match field.role {
            Some(role) => {
                let variant = Ident::new(role.variant, Span::call_site());
                quote!(#p::Some(#p::Role::#variant))
            }
            None => quote!(#p::None),
        };
        let ty = field.type_text();
        let secret = field.secret_type;
        let optional = field.optional;
        let default = match &field.default {
            Some(default) => {
                let text = default.text();
                quote!(#p::Some(#text))
            }
            None => quote!(#p::None),
        };
        quote!(#p::Variable::new(#field_name, #env, #role, #ty, #secret, #optional, #default))
    });
    let role_vars = model::ROLES.iter().map(|role| {
        let variant = Ident::new(role.variant, Span::call_site());
        let env = match config.field_for(role.name).and_then(|f| f.env.as_ref()) {
            Some((env, _)) => env.clone(),
            None => role.env(&config.prefix),
        };
        quote!((#p::Role::#variant, #env))
    });

    let mut reads = Vec::new();
    for (index, field) in bound.iter().enumerate() {
        let ident = field.ident;
        let ty = field.ty;
        let inner = field.inner;
        let span = inner.span();
        let raw = format_ident!("__raw_{}", index);
        let read = if field.secret_type {
            quote_spanned!(span=> __reader.secret::<#inner>(#index))
        } else {
            quote_spanned!(span=> __reader.parse::<#inner>(#index))
        };
        let value = if field.optional {
            quote!(__reader.optional(#raw))
        } else if field.default.is_some() {
            match typed_default(field) {
                Some(default) => quote!(__reader.or_default(#raw, #default)),
                None => quote_spanned!(span=> __reader.or_default_str::<#inner>(#index, #raw)),
            }
        } else {
            quote!(__reader.required(#index, #raw))
        };
        let note_role = field.role.map(|role| {
            let setting = Ident::new(role.name, Span::call_site());
            let role_ty = role_type(role, &p);
            quote_spanned! {ty.span()=>
                if let #p::Some(__value) = &#ident {
                    __reader.settings.#setting = <#ty as #p::RoleValue<#role_ty>>::role_value(__value);
                }
            }
        });
        reads.push(quote! {
            let #raw = #read;
            let #ident: #p::Option<#ty> = #value;
            #note_role
        });
    }
    let build = config.fields.iter().map(|field| {
        let ident = field.ident;
        if field.skip {
            quote!(#ident: ::core::default::Default::default())
        } else {
            quote!(#ident: #ident?)
        }
    });
    let settings = bound.iter().filter_map(|field| {
        let role = field.role?;
        let ident = field.ident;
        let ty = field.ty;
        let setting = Ident::new(role.name, Span::call_site());
        let role_ty = role_type(role, &p);
        Some(quote_spanned! {ty.span()=>
            __settings.#setting = <#ty as #p::RoleValue<#role_ty>>::role_value(&self.#ident);
        })
    });

    quote! {
        #[allow(non_upper_case_globals, clippy::all)]
        const _: () = {
            const __VARIABLES: &[#p::Variable] = &[#(#variables),*];
            const __ROLE_VARS: &[(#p::Role, &str)] = &[#(#role_vars),*];
            const __AUTH: &[#p::AuthKind] = &[#(#p::AuthKind::#auth_variants),*];
            const __SPEC: #p::ConfigSpec =
                #p::ConfigSpec::new(#name, #p::Some(__AUTH), __VARIABLES, __ROLE_VARS)
                    .with_prefix(#prefix);

            #[automatically_derived]
            impl #impl_generics #p::AzureRedisConfig for #ident #ty_generics #where_clause {
                const SPEC: &'static #p::ConfigSpec = &__SPEC;

                fn from_var_source(
                    __vars: &#p::VarSource,
                ) -> #p::Result<Self, #p::ConfigError> {
                    let mut __reader = #p::Reader::new(Self::SPEC, __vars);
                    #(#reads)*
                    __reader.finish(|| #p::Some(Self { #(#build),* }))
                }

                fn settings(&self) -> #p::Settings {
                    let mut __settings = <#p::Settings as ::core::default::Default>::default();
                    #(#settings)*
                    __settings
                }
            }

            #deserialize
        };
    }
}
