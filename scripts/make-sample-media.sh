#!/usr/bin/env bash
# Generates the small, deterministic sample media that tollgate's file origin
# serves from sample/ (used by the README quick start and scripts/e2e-ffmpeg.sh).
#
#   sample/vod/demo/     ~6 s, HLS (2 renditions, MPEG-TS) + DASH (fMP4)
#   sample/vod/trailer/  ~2 s, HLS (1 rendition) -- a second resource for scope checks
#
# Usage: bash scripts/make-sample-media.sh      (from any directory)
#
# Everything is encoded once into intermediate files (H.264 + AAC) and then only
# remuxed (-c copy) into HLS and DASH, so both formats carry the same bitstreams.
# With the same ffmpeg/libx264 build the output is byte-identical run to run
# (single-threaded x264, bitexact muxing, no metadata, no wall-clock values).
# The HLS master playlists are written by this script (not by ffmpeg's hls
# muxer, which drops CODECS when stream-copying) so that BANDWIDTH, RESOLUTION
# and CODECS are always present.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)
vod="$repo_root/sample/vod"

for tool in ffmpeg ffprobe awk; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "make-sample-media: '$tool' not found (Debian: apt-get install -y ffmpeg)" >&2
    exit 1
  }
done

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# Common ffmpeg flags: quiet, never prompt, overwrite, deterministic output.
ff=(ffmpeg -nostdin -hide_banner -loglevel error -y)
exact=(-fflags +bitexact -flags +bitexact -map_metadata -1 -map_chapters -1)
# 25 fps, a keyframe exactly every 2 s (50 frames), no scene-cut keyframes.
x264=(-c:v libx264 -threads 1 -preset medium -pix_fmt yuv420p
      -g 50 -keyint_min 50 -sc_threshold 0 -bf 0)

# encode_video OUT SIZE PROFILE KBPS SECONDS SOURCE
encode_video() {
  local out=$1 size=$2 profile=$3 kbps=$4 secs=$5 src=$6
  "${ff[@]}" -f lavfi -i "${src}=size=${size}:rate=25" -t "$secs" \
    "${x264[@]}" -profile:v "$profile" \
    -b:v "${kbps}k" -maxrate "${kbps}k" -bufsize "$((kbps * 2))k" \
    -an "${exact[@]}" "$out"
}

# encode_audio OUT SECONDS FREQ
encode_audio() {
  local out=$1 secs=$2 freq=$3
  "${ff[@]}" -f lavfi -i "sine=frequency=${freq}:sample_rate=48000" -t "$secs" \
    -c:a aac -b:a 64k -ac 1 -vn "${exact[@]}" "$out"
}

# hls_media DIR VIDEO AUDIO -- one MPEG-TS rendition: DIR/index.m3u8 + DIR/seg_NNN.ts
hls_media() {
  local dir=$1 video=$2 audio=$3
  mkdir -p "$dir"
  "${ff[@]}" -i "$video" -i "$audio" -map 0:v:0 -map 1:a:0 -c copy "${exact[@]}" \
    -f hls -hls_time 2 -hls_playlist_type vod -hls_segment_type mpegts \
    -hls_flags independent_segments \
    -hls_segment_filename "$dir/seg_%03d.ts" "$dir/index.m3u8"
}

# avc_codec FILE -> avc1.PPCCLL from the avcC box (profile, constraints, level)
avc_codec() {
  ffprobe -v error -select_streams v:0 -show_entries stream=extradata -show_data \
    -of default=nw=1 "$1" |
    awk '$1 == "00000000:" { printf "avc1.%s%s%s\n", substr($2, 3, 2), substr($3, 1, 2), substr($3, 3, 2); found = 1 }
         END { if (!found) exit 1 }'
}

# stream_inf MEDIA_PLAYLIST VIDEO -> the #EXT-X-STREAM-INF line for a variant.
# BANDWIDTH is the peak segment bitrate (RFC 8216 4.3.4.2), AVERAGE-BANDWIDTH
# the mean, both measured on the TS segments actually written.
stream_inf() {
  local playlist=$1 video=$2 dir codecs res
  dir=$(dirname -- "$playlist")
  codecs="$(avc_codec "$video"),mp4a.40.2"
  res=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height \
    -of csv=s=x:p=0 "$video")
  awk -v dir="$dir" -v codecs="$codecs" -v res="$res" '
    /^#EXTINF:/ { sub(/^#EXTINF:/, ""); sub(/,.*/, ""); dur = $0 + 0; next }
    /^[^#]/ && NF {
      cmd = "wc -c < \"" dir "/" $0 "\""; cmd | getline bytes; close(cmd)
      rate = bytes * 8 / dur; if (rate > peak) peak = rate
      total_bits += bytes * 8; total_dur += dur
    }
    END {
      if (total_dur <= 0) exit 1
      printf "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,RESOLUTION=%s,FRAME-RATE=25.000,CODECS=\"%s\"\n",
        int(peak + 0.999), int(total_bits / total_dur + 0.999), res, codecs
    }' "$playlist"
}

echo "make-sample-media: writing $vod/{demo,trailer} with $(ffmpeg -hide_banner -version | head -n1)"
rm -rf -- "$vod/demo" "$vod/trailer"
mkdir -p "$vod/demo" "$vod/trailer"

# ---------------------------------------------------------------- demo (6 s)
encode_video "$tmp/demo-v0.mp4" 640x360 main 300 6 testsrc2
encode_video "$tmp/demo-v1.mp4" 320x180 baseline 120 6 testsrc2
# Audio is 5.9 s, not 6: with 1024-sample AAC frames a full 6 s track makes
# the DASH muxer emit a 4th, 70 ms audio segment (which ffmpeg's own DASH
# demuxer never requests). 5.9 s gives exactly three segments, like the video.
encode_audio "$tmp/demo-a.m4a" 5.9 440

hls_media "$vod/demo/v0" "$tmp/demo-v0.mp4" "$tmp/demo-a.m4a"
hls_media "$vod/demo/v1" "$tmp/demo-v1.mp4" "$tmp/demo-a.m4a"
{
  echo '#EXTM3U'
  echo '#EXT-X-VERSION:3'
  echo '#EXT-X-INDEPENDENT-SEGMENTS'
  stream_inf "$vod/demo/v0/index.m3u8" "$tmp/demo-v0.mp4"
  echo 'v0/index.m3u8'
  stream_inf "$vod/demo/v1/index.m3u8" "$tmp/demo-v1.mp4"
  echo 'v1/index.m3u8'
} >"$vod/demo/master.m3u8"

# DASH: same bitstreams, two video representations + one audio, SegmentTemplate
# with SegmentTimeline, relative (template) URLs, fMP4 segments.
mkdir -p "$vod/demo/dash"
# shellcheck disable=SC2016 # $RepresentationID$/$Number$ are DASH template identifiers
"${ff[@]}" -i "$tmp/demo-v0.mp4" -i "$tmp/demo-v1.mp4" -i "$tmp/demo-a.m4a" \
  -map 0:v:0 -map 1:v:0 -map 2:a:0 -c copy "${exact[@]}" \
  -f dash -seg_duration 2 -use_template 1 -use_timeline 1 \
  -adaptation_sets "id=0,streams=v id=1,streams=a" \
  -init_seg_name 'init-$RepresentationID$.m4s' \
  -media_seg_name 'chunk-$RepresentationID$-$Number%03d$.m4s' \
  "$vod/demo/dash/manifest.mpd"

# ------------------------------------------------------------- trailer (2 s)
encode_video "$tmp/trailer-v0.mp4" 320x180 baseline 120 2 testsrc
encode_audio "$tmp/trailer-a.m4a" 2 880
hls_media "$vod/trailer/v0" "$tmp/trailer-v0.mp4" "$tmp/trailer-a.m4a"
{
  echo '#EXTM3U'
  echo '#EXT-X-VERSION:3'
  echo '#EXT-X-INDEPENDENT-SEGMENTS'
  stream_inf "$vod/trailer/v0/index.m3u8" "$tmp/trailer-v0.mp4"
  echo 'v0/index.m3u8'
} >"$vod/trailer/master.m3u8"

# ------------------------------------------------------------------- checks
# Every playlist/manifest must demux and decode cleanly from the local files.
for entry in demo/master.m3u8 demo/dash/manifest.mpd trailer/master.m3u8; do
  log=$(ffmpeg -nostdin -hide_banner -loglevel warning -i "$vod/$entry" -map 0 -f null - 2>&1) || {
    printf 'make-sample-media: %s does not decode:\n%s\n' "$entry" "$log" >&2
    exit 1
  }
  if [[ -n $log ]]; then
    printf 'make-sample-media: warnings while decoding %s:\n%s\n' "$entry" "$log" >&2
    exit 1
  fi
done
# All URIs must be relative so they resolve under /t/<token>/... at the gate.
if grep -rqE '^[^#].*://|^/|URI="(/|[a-z]+://)' --include='*.m3u8' "$vod/demo" "$vod/trailer" ||
  grep -qE '(media|initialization)="(/|[a-z]+://)|<BaseURL' "$vod/demo/dash/manifest.mpd"; then
  echo "make-sample-media: found a non-relative URI in a playlist/manifest" >&2
  exit 1
fi

echo "make-sample-media: done"
du -sh "$vod/demo" "$vod/trailer"
