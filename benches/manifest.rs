//! Manifest rewriting cost: a 5,000-segment VOD playlist (a long event with
//! 2 s segments, an hour of AES-128 key rotations) and a 2-hour `$Number$` MPD, each
//! rewritten with a real-length token, beside a plain copy of the same bytes (the floor
//! any rewrite pays: one pass, one allocation).
//!
//! Run: `cargo bench --bench manifest`. Criterion prints time per manifest and, with
//! the byte throughput set, MB/s of input. Target: under 1 ms for the playlist.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate::manifest::{dash, hls, Rewrite};

/// A JWT-sized token (344 bytes; EdDSA tokens from `tollgate token mint` are about that).
fn token() -> String {
    let part =
        |n: usize| "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_".repeat(n);
    format!(
        "eyJhbGciOiJFZERTQSIsImtpZCI6ImRldiJ9.{}.{}",
        &part(4)[..220],
        &part(2)[..86]
    )
}

fn vod_playlist(segments: usize) -> String {
    let mut s = String::from(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n",
    );
    for i in 0..segments {
        if i % 1800 == 0 {
            s += &format!(
                "#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example.com/k/{i}.key\",IV=0x{i:032x}\n"
            );
        }
        s += &format!("#EXTINF:2.000000,\nsegment_{i:05}.m4s\n");
    }
    s + "#EXT-X-ENDLIST\n"
}

fn number_mpd() -> String {
    let reps: String = [(1, 400_000, 640), (2, 1_200_000, 1280), (3, 3_500_000, 1920)]
        .iter()
        .map(|(id, bw, w)| {
            format!(
                "      <Representation id=\"v{id}\" bandwidth=\"{bw}\" width=\"{w}\" height=\"{}\" codecs=\"avc1.64001f\"/>\n",
                w * 9 / 16
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="PT2H0M0.000S" minBufferTime="PT2S">
  <Period id="0" start="PT0S">
    <AdaptationSet mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <SegmentTemplate timescale="90000" duration="180000" startNumber="1" media="$RepresentationID$/$Number%05d$.m4s" initialization="$RepresentationID$/init.mp4"/>
{reps}    </AdaptationSet>
    <AdaptationSet mimeType="audio/mp4" lang="en">
      <SegmentTemplate timescale="48000" duration="96000" startNumber="1" media="$RepresentationID$/$Number%05d$.m4s" initialization="$RepresentationID$/init.mp4"/>
      <Representation id="a1" bandwidth="128000" codecs="mp4a.40.2" audioSamplingRate="48000"/>
    </AdaptationSet>
    <AdaptationSet mimeType="text/vtt" lang="en">
      <Representation id="s1" bandwidth="1000">
        <BaseURL>subtitles/en.vtt</BaseURL>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
"#
    )
}

fn bench(c: &mut Criterion) {
    let token = token();
    let allow = vec!["cdn.example.com".to_string()];
    let rw = Rewrite {
        param: "token",
        token: &token,
        allow_hosts: &allow,
    };

    let playlist = vod_playlist(5_000);
    let mut g = c.benchmark_group("hls_vod_5000_segments");
    g.throughput(Throughput::Bytes(playlist.len() as u64));
    g.bench_function("rewrite", |b| {
        b.iter(|| hls::rewrite(black_box(playlist.as_bytes()), &rw).expect("rewrites"))
    });
    g.bench_function("copy", |b| {
        b.iter(|| black_box(playlist.as_bytes()).to_vec())
    });
    g.finish();

    let mpd = number_mpd();
    let mut g = c.benchmark_group("dash_2h_number_mpd");
    g.throughput(Throughput::Bytes(mpd.len() as u64));
    g.bench_function("rewrite", |b| {
        b.iter(|| dash::rewrite(black_box(mpd.as_bytes()), &rw).expect("rewrites"))
    });
    g.bench_function("copy", |b| b.iter(|| black_box(mpd.as_bytes()).to_vec()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
