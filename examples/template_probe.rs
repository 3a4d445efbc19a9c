//! Renders one template N times through one path, for instruction counting under callgrind
//! (repeatable on a noisy machine): `ci/template-instructions.sh` runs each path at two values
//! of N and prints the difference per render.
//!
//! Paths: `reader` (a kept `Reader`), `cache_render` (`TemplateCache::render`, the per-thread
//! snapshot), `temporary_reader` (`cache.reader().render(..)`: what `render` did before),
//! `minijinja` (a bare minijinja `Environment` holding the template: what a user would write
//! without the cache). `reader_page` and `minijinja_page` render a page that `extends` a base
//! and `include`s a fragment (output about 1 KiB, like the workload's pages) the same two ways.
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
        eprintln!(
            "usage: template_probe \
             reader|cache_render|temporary_reader|minijinja|reader_page|minijinja_page N"
        );
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("t.html"),
        "<p>Hello {{ name }} #{{ n }}</p>",
    )
    .expect("write the template");
    let base = format!(
        "<html><head><title>{{% block title %}}{{% endblock %}}</title></head><body>\
         {{% include \"nav.html\" %}}<main>{{% block body %}}{{% endblock %}}</main>{}</body></html>",
        "<!-- padding: the layout's static markup -->".repeat(12)
    );
    let nav =
        "<nav>{% for i in range(8) %}<a href=\"/p/{{ i }}\">item {{ i }}</a>{% endfor %}</nav>";
    let page = "{% extends \"base.html\" %}{% block title %}Hi {{ name }}{% endblock %}\
                {% block body %}<p>Hello {{ name }} #{{ n }}</p>{% endblock %}";
    for (name, source) in [
        ("base.html", base.as_str()),
        ("nav.html", nav),
        ("page.html", page),
    ] {
        std::fs::write(dir.path().join(name), source).expect("write the template");
    }
    let mut env = minijinja::Environment::new();
    env.add_template("t.html", "<p>Hello {{ name }} #{{ n }}</p>")
        .expect("compiles");
    env.add_template("base.html", &base).expect("compiles");
    env.add_template("nav.html", nav).expect("compiles");
    env.add_template("page.html", page).expect("compiles");
    let cache: TemplateCache<MiniJinja> =
        TemplateCache::new(MiniJinja::new(), FileSystemLoader::new([dir.path()]));
    let ctx = |i: u64| serde_json::json!({ "name": "World", "n": i });
    // Warm: the template is compiled and cached before counting starts.
    cache.render("t.html", &ctx(0)).expect("render");
    cache.render("page.html", &ctx(0)).expect("render");
    let bare = |name: &str, i: u64| {
        env.get_template(name)
            .and_then(|t| t.render(minijinja::Value::from(minijinja::value::Serde(ctx(i)))))
    };
    let mut reader = cache.reader();
    for i in 0..n {
        let out: Result<String, String> = match path.as_str() {
            "reader" => reader.render("t.html", &ctx(i)).map_err(|e| e.to_string()),
            "cache_render" => cache.render("t.html", &ctx(i)).map_err(|e| e.to_string()),
            "temporary_reader" => cache
                .reader()
                .render("t.html", &ctx(i))
                .map_err(|e| e.to_string()),
            "reader_page" => reader
                .render("page.html", &ctx(i))
                .map_err(|e| e.to_string()),
            "minijinja" => bare("t.html", i).map_err(|e| e.to_string()),
            "minijinja_page" => bare("page.html", i).map_err(|e| e.to_string()),
            other => {
                eprintln!("unknown path {other}");
                std::process::exit(2);
            }
        };
        black_box(out.expect("render"));
    }
}
