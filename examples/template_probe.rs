//! Renders one template N times through one path, for instruction counting under callgrind
//! (repeatable on a noisy machine): `ci/template-instructions.sh` runs each path at two values
//! of N and prints the difference per render.
//!
//! Paths: `reader` (a kept `Reader`), `cache_render` (`TemplateCache::render`, the per-thread
//! snapshot), `temporary_reader` (`cache.reader().render(..)`: what `render` did before).
//!
//! ```sh
//! cargo build --release --example template_probe
//! valgrind --tool=callgrind target/release/examples/template_probe cache_render 10000
//! ```

use std::hint::black_box;

use unlocked::template::{FileSystemLoader, MiniJinja, TemplateCache};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next().and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: template_probe reader|cache_render|temporary_reader N");
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("t.html"),
        "<p>Hello {{ name }} #{{ n }}</p>",
    )
    .expect("write the template");
    let cache: TemplateCache<MiniJinja> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    let ctx = |i: u64| serde_json::json!({ "name": "World", "n": i });
    // Warm: the template is compiled and cached before counting starts.
    cache.render("t.html", &ctx(0)).expect("render");
    let mut reader = cache.reader();
    for i in 0..n {
        let out = match path.as_str() {
            "reader" => reader.render("t.html", &ctx(i)),
            "cache_render" => cache.render("t.html", &ctx(i)),
            "temporary_reader" => cache.reader().render("t.html", &ctx(i)),
            other => {
                eprintln!("unknown path {other}");
                std::process::exit(2);
            }
        };
        black_box(out.expect("render"));
    }
}
