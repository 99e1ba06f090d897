//! On error: the errors, plus a stub impl so that code using the generated trait still type
//! checks and the user sees only the errors that matter.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

pub fn expand(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let errors = error.to_compile_error();
    quote! {
        #errors
        #[allow(unreachable_code, clippy::all)]
        const _: () = {
            impl #impl_generics ::azure_redis_connect::__private::AzureRedisConfig
                for #ident #ty_generics #where_clause
            {
                const SPEC: &'static ::azure_redis_connect::__private::ConfigSpec =
                    &::azure_redis_connect::__private::ConfigSpec::new("", ::azure_redis_connect::__private::None, &[], &[]);

                fn from_var_source(
                    _: &::azure_redis_connect::__private::VarSource,
                ) -> ::azure_redis_connect::__private::Result<Self, ::azure_redis_connect::__private::ConfigError> {
                    ::core::unreachable!()
                }

                fn settings(&self) -> ::azure_redis_connect::__private::Settings {
                    ::core::unreachable!()
                }
            }
        };
    }
}
