//! Collects every error of one derive, so a user sees all mistakes in one compile.

use std::cell::RefCell;
use std::fmt::Display;

use quote::ToTokens;

/// The errors found so far. Must be [`check`](Ctxt::check)ed: dropping it unchecked with
/// errors recorded panics, so that no error can be lost (serde's `Ctxt` rule).
#[derive(Default)]
pub struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
    checked: std::cell::Cell<bool>,
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && !self.checked.get() && !self.errors.borrow().is_empty() {
            panic!("errors recorded in Ctxt were never checked");
        }
    }
}

impl Ctxt {
    /// Records an error pointing at `tokens`.
    pub fn error_spanned_by(&self, tokens: impl ToTokens, message: impl Display) {
        self.errors
            .borrow_mut()
            .push(syn::Error::new_spanned(tokens.into_token_stream(), message));
    }

    /// Records an error as it is.
    pub fn syn_error(&self, error: syn::Error) {
        self.errors.borrow_mut().push(error);
    }

    /// How many errors were recorded so far.
    pub fn count(&self) -> usize {
        self.errors.borrow().len()
    }

    /// `Ok` if no error was recorded, else all of them as one `syn::Error`.
    pub fn check(self) -> syn::Result<()> {
        self.checked.set(true);
        let mut errors = self.errors.take().into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

/// The closest of `candidates` to `input`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // A transposition or a slip of one or two letters, or a long shared stem.
    let limit = (input.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(input, c),
                strsim::jaro_winkler(input, c),
                c,
            )
        })
        .filter(|(distance, score, _)| *distance <= limit || *score > 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}
