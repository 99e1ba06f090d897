//! On error: the errors, plus a stub impl so that code using the generated trait still type
//! checks and the user sees only the errors that matter.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

pub fn expand(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let ident = &input.ident;
    let p = crate::private_path(&crate::attr::crate_path(&input.attrs));
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let errors = error.to_compile_error();
    let deserialize = crate::expand::deserialize_impl(&p, ident, &input.generics);
    quote! {
        #errors
        #[allow(unreachable_code, clippy::all)]
        const _: () = {
            impl #impl_generics #p::AzureRedisConfig
                for #ident #ty_generics #where_clause
            {
                const SPEC: &'static #p::ConfigSpec =
                    &#p::ConfigSpec::new("", #p::None, &[], &[]);

                fn from_var_source(
                    _: &#p::VarSource,
                ) -> #p::Result<Self, #p::ConfigError> {
                    ::core::unreachable!()
                }

                fn settings(&self) -> #p::Settings {
                    ::core::unreachable!()
                }
            }

            #deserialize
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stub_names_the_renamed_crate() {
        let input: syn::DeriveInput = syn::parse_quote! {
            #[azure_redis(crate = "renamed::inner", auth = "sytem_identity")]
            struct Cache { host: String }
        };
        let error = syn::Error::new(proc_macro2::Span::call_site(), "x");
        let out = super::expand(&input, error).to_string();
        assert!(
            out.contains("renamed :: inner :: __private_0_1 :: AzureRedisConfig"),
            "{out}"
        );
        assert!(!out.contains("azure_redis_connect"), "{out}");
        // The `Deserialize` stub too, through the runtime's feature gate at the same path.
        assert!(
            out.contains("renamed :: inner :: __private_0_1 :: serde_impl !"),
            "{out}"
        );

        let plain: syn::DeriveInput = syn::parse_quote! {
            #[azure_redis(auth(system_identity, developer_tools), prefix = "X_")]
            struct Cache { host: String }
        };
        let error = syn::Error::new(proc_macro2::Span::call_site(), "x");
        let out = super::expand(&plain, error).to_string();
        assert!(
            out.contains(":: azure_redis_connect :: __private_0_1 ::"),
            "{out}"
        );
    }

    #[test]
    fn the_deserialize_stub_keeps_the_structs_generics() {
        // A generic struct is refused; its stub `Deserialize` must still be well-formed, so that
        // the refusal is the only error.
        let input: syn::DeriveInput = syn::parse_quote! {
            struct Cache<T: Clone> where T: Send { host: T }
        };
        let error = syn::Error::new(proc_macro2::Span::call_site(), "x");
        let out = super::expand(&input, error).to_string();
        assert!(
            out.contains(
                "impl < '__de , T : Clone > :: azure_redis_connect :: __private_0_1 :: serde :: Deserialize < '__de > for Cache < T > where T : Send"
            ),
            "{out}"
        );
    }
}
