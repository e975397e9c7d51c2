//! DASH MPD rewriting against hand-checked golden files (`tests/golden/dash/`).
//!
//! Each `NAME.mpd` is rewritten with param `token`, token `TOKEN123` and allow-list
//! `["cdn.example.com"]` and must equal `NAME.expected.mpd` byte for byte. Every input
//! is also checked for two properties: rewriting the output again changes nothing, and
//! removing the added token parameters gives back the input exactly.

use std::path::PathBuf;

use tollgate::manifest::dash::rewrite;
use tollgate::manifest::Rewrite;

const GOLDEN: [&str; 4] = ["number", "time", "segmentlist", "baseurl-periods"];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/dash")
}

fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn run(input: &[u8]) -> Vec<u8> {
    let allow = vec!["cdn.example.com".to_string()];
    let rw = Rewrite {
        param: "token",
        token: "TOKEN123",
        allow_hosts: &allow,
    };
    rewrite(input, &rw).expect("golden input is a well-formed MPD")
}

/// Panic with the first differing line when `got != want`.
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let got = String::from_utf8_lossy(got);
    let want = String::from_utf8_lossy(want);
    let mut got_lines = got.split_inclusive('\n');
    let mut want_lines = want.split_inclusive('\n');
    let mut n = 1;
    loop {
        match (got_lines.next(), want_lines.next()) {
            (Some(g), Some(w)) if g == w => n += 1,
            (g, w) => panic!(
                "{what}: first difference at line {n}\n  got:  {:?}\n  want: {:?}",
                g.unwrap_or("<end of output>"),
                w.unwrap_or("<end of expected>")
            ),
        }
    }
}

#[test]
fn golden_files_rewrite_to_expected() {
    for name in GOLDEN {
        let input = read(&format!("{name}.mpd"));
        let expected = read(&format!("{name}.expected.mpd"));
        assert_ne!(
            input, expected,
            "{name}: the expected file must show a rewrite"
        );
        assert_same(name, &run(&input), &expected);
    }
}

#[test]
fn rewriting_is_idempotent() {
    for name in GOLDEN {
        let once = run(&read(&format!("{name}.mpd")));
        let twice = run(&once);
        assert_same(&format!("{name} (rewritten twice)"), &twice, &once);
    }
}

#[test]
fn removing_the_token_gives_back_the_input() {
    for name in GOLDEN {
        let input = read(&format!("{name}.mpd"));
        let text = String::from_utf8(input.clone()).expect("golden input is UTF-8");
        assert!(
            !text.contains("token="),
            "{name}: property needs an input without token params"
        );
        let out = String::from_utf8(run(&input)).expect("output is UTF-8");
        assert!(out.contains("token=TOKEN123"), "{name}: nothing rewritten");
        let stripped = out
            .replace("&amp;token=TOKEN123", "")
            .replace("?token=TOKEN123", "");
        assert_same(
            &format!("{name} (token removed)"),
            stripped.as_bytes(),
            &input,
        );
    }
}

#[test]
fn a_long_segment_list_is_rewritten_entirely() {
    let mut mpd = String::from(
        "<?xml version=\"1.0\"?>\n<MPD type=\"static\"><Period><AdaptationSet><Representation id=\"1\" bandwidth=\"1\"><SegmentList duration=\"2\">\n",
    );
    for i in 0..5000 {
        mpd.push_str(&format!("<SegmentURL media=\"seg-{i}.m4s\"/>\n"));
    }
    mpd.push_str("</SegmentList></Representation></AdaptationSet></Period></MPD>\n");
    let out = String::from_utf8(run(mpd.as_bytes())).expect("output is UTF-8");
    assert_eq!(out.matches(".m4s?token=TOKEN123\"").count(), 5000);
    assert_eq!(out.replace("?token=TOKEN123", ""), mpd);
}
