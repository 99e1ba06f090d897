//! The derive macro and the runtime each hold the vocabulary of roles and auth types (a
//! proc-macro crate cannot share items with the crate it expands into). This test reads the
//! macro's tables from its source and checks them against the runtime's, so that adding a role
//! or an auth type in one place and not the other fails here, naming what differs.

#[allow(dead_code)]
#[path = "../../macros/src/model.rs"]
mod model;

use azure_redis_connect::config::{AuthKind, Role};

#[test]
fn roles_agree_in_name_variant_and_order() {
    let runtime: Vec<(String, String)> = Role::ALL
        .iter()
        .map(|r| (r.name().to_owned(), format!("{r:?}")))
        .collect();
    let macros: Vec<(String, String)> = model::ROLES
        .iter()
        .map(|r| (r.name.to_owned(), r.variant.to_owned()))
        .collect();
    assert_eq!(
        macros, runtime,
        "macros/src/model.rs ROLES ~ config::Role::ALL"
    );
}

#[test]
fn auth_types_agree_in_name_variant_and_required_roles() {
    let runtime: Vec<(String, String, Vec<String>)> = AuthKind::ALL
        .iter()
        .map(|k| {
            let required = k.required_roles().iter().map(|r| r.name().to_owned());
            (k.name().to_owned(), format!("{k:?}"), required.collect())
        })
        .collect();
    let macros: Vec<(String, String, Vec<String>)> = model::AUTH_KINDS
        .iter()
        .map(|k| {
            let required = k.required.iter().map(|r| (*r).to_owned());
            (k.name.to_owned(), k.variant.to_owned(), required.collect())
        })
        .collect();
    assert_eq!(
        macros, runtime,
        "macros/src/model.rs AUTH_KINDS ~ config::AuthKind::ALL"
    );
}

#[test]
fn detected_auth_types_agree() {
    let runtime: Vec<&str> = AuthKind::DETECTED.iter().map(|k| k.name()).collect();
    assert_eq!(model::DETECTED, runtime.as_slice());
}

#[test]
fn prefixes_agree() {
    assert_eq!(
        model::DEFAULT_PREFIX,
        azure_redis_connect::config::DEFAULT_PREFIX
    );
    assert_eq!(
        model::SPRING_PREFIX,
        azure_redis_connect::config::SPRING_PREFIX
    );
}

#[test]
fn every_alias_points_at_known_auth_types_and_is_not_one_itself() {
    for (alias, suggestion) in model::ALIASES {
        assert!(
            AuthKind::from_name(alias).is_none(),
            "{alias} is an auth type"
        );
        let named: Vec<&str> = suggestion.split('`').skip(1).step_by(2).collect();
        assert!(!named.is_empty(), "{alias}: {suggestion}");
        for name in named {
            assert!(
                AuthKind::from_name(name).is_some(),
                "{alias} suggests {name}"
            );
        }
    }
}
