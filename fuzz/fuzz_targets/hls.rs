//! The HLS rewriter on arbitrary bytes: no panic, and what it accepts it keeps intact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::manifest::{hls, Rewrite};

fuzz_target!(|data: &[u8]| {
    let allow = ["cdn.example.com".to_string()];
    let rw = Rewrite {
        param: "token",
        token: "T0K.E-N_",
        allow_hosts: &allow,
    };
    if let Ok(out) = hls::rewrite(data, &rw) {
        // Rewriting only adds (or replaces) token parameters: the result is UTF-8, at
        // least as long minus dropped old tokens, and a second pass changes nothing.
        assert!(std::str::from_utf8(&out).is_ok());
        let again = hls::rewrite(&out, &rw).expect("a rewritten playlist still parses");
        assert_eq!(again, out, "rewriting is idempotent");
    }
});
