//! The maps, checked against the code so that they cannot go stale:
//!
//! * docs/layout.md names every workspace member and every file of its modules, and
//!   no file that is gone;
//! * docs/testing.md describes every test binary of tests/Cargo.toml, and no other;
//! * the library's modules import each other without a circle (no module imports one
//!   that imports it back, directly or through others);
//! * every backend of the list (`allocshim_select::ALL`) has its module in each crate
//!   that needs one, and the places docs/layout.md's recipe names ("Adding a backend").
//!
//! Pure reading of the source tree: no build, no program run.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use allocshim_tests::workspace;
use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

// ---------------------------------------------------------------------------------
// The import graph

/// A module's path from its crate root (`[]` is lib.rs, `["backend", "jemalloc"]` is
/// backend/jemalloc.rs or backend/jemalloc/mod.rs).
type ModPath = Vec<String>;

/// Which module of the crate each source file under `src` is.
fn module_files(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap();
            let mut parts: ModPath = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            let last = parts.pop().unwrap();
            match last.as_str() {
                "lib.rs" | "main.rs" if parts.is_empty() => {}
                "mod.rs" => {}
                _ => parts.push(last.trim_end_matches(".rs").to_string()),
            }
            out.insert(parts, rel.to_path_buf());
        }
    }
    out
}

/// What one file refers to: every path it names (in `use` items, expressions, types,
/// patterns and the tokens of macro calls), made absolute where it starts at `crate`,
/// `super` or `self`, at a name it imported from the crate, or at a child module.
struct Refs<'a> {
    modules: &'a BTreeMap<ModPath, PathBuf>,
    /// The module the visitor is in (the file's, or an inline `mod` inside it).
    here: ModPath,
    /// Names brought in by this file's `use` items, and where they point.
    imported: BTreeMap<String, ModPath>,
    found: Vec<ModPath>,
}

impl Refs<'_> {
    /// `segments` made absolute, or None for a path outside the crate (another crate,
    /// a local item, a prelude name).
    fn absolute(&self, segments: &[String]) -> Option<ModPath> {
        let first = segments.first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.here.clone(),
            "super" => {
                let mut m = self.here.clone();
                let mut rest = segments;
                while rest.first().is_some_and(|s| s == "super") {
                    m.pop()?;
                    rest = &rest[1..];
                }
                return Some(m.into_iter().chain(rest.iter().cloned()).collect());
            }
            name => {
                if let Some(target) = self.imported.get(name) {
                    target.clone()
                } else {
                    let child: ModPath = self.here.iter().cloned().chain([name.to_string()]).collect();
                    if !self.modules.contains_key(&child) {
                        return None;
                    }
                    child
                }
            }
        };
        base.extend(segments[1..].iter().cloned());
        Some(base)
    }

    fn note(&mut self, segments: &[String]) {
        if let Some(p) = self.absolute(segments) {
            self.found.push(p);
        }
    }

    /// Records each leaf of a `use` tree (`prefix` is the path above it).
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.use_leaf(prefix, &n.ident.to_string(), &n.ident.to_string()),
            syn::UseTree::Rename(r) => self.use_leaf(prefix, &r.ident.to_string(), &r.rename.to_string()),
            syn::UseTree::Glob(_) => {
                let path = prefix.clone();
                self.note(&path);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &[String], name: &str, bound_as: &str) {
        let mut path = prefix.to_vec();
        if name != "self" {
            path.push(name.to_string());
        }
        if let Some(abs) = self.absolute(&path) {
            self.imported.insert(bound_as.to_string(), abs.clone());
            self.found.push(abs);
        }
    }

    /// Paths inside a macro call's tokens (`matches!(x, crate::a::B)`), which syn
    /// leaves unparsed: runs of `ident :: ident ...`.
    fn tokens(&mut self, tokens: TokenStream) {
        let mut run: Vec<String> = Vec::new();
        let mut colons = 0;
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) if run.is_empty() || colons == 2 => {
                    run.push(i.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' && !run.is_empty() && colons < 2 => colons += 1,
                other => {
                    self.flush(&mut run);
                    colons = 0;
                    if let TokenTree::Group(g) = other {
                        self.tokens(g.stream());
                    } else if let TokenTree::Ident(i) = other {
                        run.push(i.to_string());
                    }
                }
            }
        }
        self.flush(&mut run);
    }

    fn flush(&mut self, run: &mut Vec<String>) {
        if run.len() > 1 {
            let path = std::mem::take(run);
            self.note(&path);
        }
        run.clear();
    }
}

impl<'ast> Visit<'ast> for Refs<'_> {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 || segments.first().is_some_and(|s| s == "crate" || s == "super") {
            self.note(&segments);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        // An inline module: its paths are relative to it. (A `mod x;` declaration is
        // containment, not an import: the file x.rs is its own node.)
        if m.content.is_some() {
            self.here.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.here.pop();
        }
    }
}

/// The file a path leads to: that of the longest prefix that is a module.
fn file_of(modules: &BTreeMap<ModPath, PathBuf>, path: &[String]) -> Option<PathBuf> {
    (0..=path.len()).rev().find_map(|n| modules.get(&path[..n]).cloned())
}

/// For each file of the crate whose root module is under `src`: the other files of the
/// crate it imports from (`use`, or a path naming an item of theirs).
pub fn import_graph(src: &Path) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let modules = module_files(src);
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = fs::read_to_string(src.join(file)).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut refs = Refs { modules: &modules, here: module.clone(), imported: BTreeMap::new(), found: Vec::new() };
        // Two passes: `use` items first, so that a name imported below its first use
        // (or in another order) still resolves.
        for item in &ast.items {
            if let syn::Item::Use(u) = item {
                refs.visit_item_use(u);
            }
        }
        refs.found.clear();
        refs.visit_file(&ast);
        let targets = refs.found.iter().filter_map(|p| file_of(&modules, p)).filter(|f| f != file).collect();
        graph.insert(file.clone(), targets);
    }
    graph
}

/// One circle of the graph, as the files along it (the first repeated at the end), or
/// None when there is none.
pub fn find_circle(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Option<Vec<PathBuf>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &PathBuf,
        graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        marks: &mut BTreeMap<PathBuf, Mark>,
        path: &mut Vec<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        marks.insert(node.clone(), Mark::Open);
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = path.iter().position(|p| p == next).unwrap();
                    let mut circle = path[start..].to_vec();
                    circle.push(next.clone());
                    return Some(circle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, graph, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(node, graph, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn show(circle: &[PathBuf]) -> String {
    circle.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> ")
}

#[test]
fn the_library_imports_without_a_circle() {
    let src = workspace().join("shim/src");
    let graph = import_graph(&src);
    assert!(graph.len() > 10, "shim/src: only {} modules found", graph.len());
    if let Some(c) = find_circle(&graph) {
        panic!("shim/src: an import circle: {}", show(&c));
    }
}

#[test]
#[ignore]
fn print_graph() {
    for (f, to) in import_graph(&workspace().join("shim/src")) {
        println!("{} -> {}", f.display(), to.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    }
}

// ---------------------------------------------------------------------------------
// docs/layout.md: every workspace member, every source file

/// The backticked words of `text`: what the docs write as code (`shim/`, `init.rs`).
fn code_words(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// docs/layout.md's sections: the text under each `## ` heading that names a directory
/// of the tree in backticks (`` ## `shim/` ``), by that directory.
fn layout_sections(layout: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for section in layout.split("\n## ").skip(1) {
        let (heading, body) = section.split_once('\n').unwrap_or((section, ""));
        if let Some(dir) = code_words(heading).into_iter().find(|w| w.ends_with('/')) {
            out.insert(dir.to_string(), body.to_string());
        }
    }
    out
}

/// Every file under `dir` (recursively; build output and hidden directories left out),
/// relative to `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    stack.push(path);
                }
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The workspace members, from the root Cargo.toml's `members = [...]`.
fn members() -> Vec<String> {
    let manifest = fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let line = manifest.lines().find(|l| l.trim_start().starts_with("members")).expect("Cargo.toml: no `members`");
    line.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

/// The files of an area of the tree that its section of docs/layout.md must name, as
/// the names a reader would look for: a module's file (`backend/jemalloc/conf.rs`), a
/// module directory (`compare/`, for its mod.rs); crate roots and manifests are named
/// by their directory's heading.
fn mapped_files(area: &str) -> Vec<String> {
    let dir = workspace().join(area);
    let mut out = Vec::new();
    for rel in files_under(&dir) {
        let path = rel.to_string_lossy().into_owned();
        let name = rel.file_name().unwrap().to_string_lossy().into_owned();
        let wanted = if area == "scripts/" {
            !matches!(name.as_str(), "Cargo.toml" | "Cargo.lock" | "lib.rs")
        } else if area == "tests/" {
            name.ends_with(".rs") && !path.contains('/') && name != "harness.rs"
                || path.starts_with("c/")
                || path.starts_with("py/")
                || path.starts_with("rb/")
        } else {
            path.starts_with("src/") && !matches!(name.as_str(), "lib.rs" | "main.rs") || path == "build.rs"
        };
        if !wanted {
            continue;
        }
        out.push(match path.strip_suffix("mod.rs") {
            Some(dir) => dir.to_string(),
            None => path,
        });
    }
    out
}

/// Whether `word` names `file` among `files`: it is the end of that path, cut at a `/`,
/// and of no other path there (`conf.rs`, `jemalloc/conf.rs`, `src/backend/jemalloc/conf.rs`).
fn names(word: &str, file: &str, files: &[String]) -> bool {
    let ends = |f: &str| f == word || f.ends_with(word) && (word.starts_with('/') || f[..f.len() - word.len()].ends_with('/'));
    !word.is_empty() && ends(file) && files.iter().filter(|f| ends(f)).count() == 1
}

/// What the check found missing from docs/layout.md: the members and the files of
/// each area that it does not name, and the files it names that do not exist.
fn layout_gaps(layout: &str) -> Vec<String> {
    let sections = layout_sections(layout);
    let mut gaps = Vec::new();
    let areas = members().into_iter().map(|m| format!("{m}/")).chain(["scripts/".to_string()]);
    for area in areas {
        let Some(body) = sections.get(&area) else {
            gaps.push(format!("no section `## \\`{area}\\`` for {area}"));
            continue;
        };
        let words = code_words(body);
        let files = mapped_files(&area);
        for file in &files {
            if !words.iter().any(|w| names(w, file, &files)) {
                gaps.push(format!("{area}{file} is not named in the section of {area}"));
            }
        }
        // Named but gone: a file name of a kind the map lists, that no file ends with.
        let all: Vec<String> = files_under(&workspace().join(&area)).iter().map(|p| p.to_string_lossy().into_owned()).collect();
        for w in words {
            let source = [".rs", ".c", ".h", ".py", ".rb", ".ru"].iter().any(|e| w.ends_with(e));
            let plain = w.chars().all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
            if source && plain && !all.iter().any(|f| f == w || f.ends_with(&format!("/{w}"))) {
                gaps.push(format!("the section of {area} names `{w}`, which is not a file under {area}"));
            }
        }
    }
    gaps
}

#[test]
fn layout_names_every_member_and_file() {
    let layout = fs::read_to_string(workspace().join("docs/layout.md")).unwrap();
    let gaps = layout_gaps(&layout);
    assert!(gaps.is_empty(), "docs/layout.md is stale:\n  {}", gaps.join("\n  "));
}

#[test]
fn layout_check_sees_a_missing_file_and_a_gone_one() {
    // The check must be able to fail: the real map with one file's mentions removed,
    // and with a file that does not exist added.
    let layout = fs::read_to_string(workspace().join("docs/layout.md")).unwrap();
    let without = layout.replace("`cpus.rs`", "cpus").replace("`src/cpus.rs`", "cpus");
    let gaps = layout_gaps(&without);
    assert!(gaps.iter().any(|g| g.contains("select/src/cpus.rs")), "{gaps:?}");
    assert!(gaps.iter().any(|g| g.contains("shim/src/cpus.rs")), "{gaps:?}");
    let with_ghost = layout.replacen("\n## `shim/`", "\n## `shim/`\n\n`ghost.rs`", 1);
    assert!(layout_gaps(&with_ghost).iter().any(|g| g.contains("`ghost.rs`")));
    let without_member = layout.replacen("## `backends/`", "## backends", 1);
    assert!(layout_gaps(&without_member).iter().any(|g| g.contains("no section") && g.contains("backends/")));
}

// ---------------------------------------------------------------------------------
// docs/testing.md: every test binary

/// The test binaries of tests/Cargo.toml (`[[test]]` names).
fn test_binaries() -> Vec<String> {
    let manifest = fs::read_to_string(workspace().join("tests/Cargo.toml")).unwrap();
    let mut out = Vec::new();
    let mut in_test = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_test = line == "[[test]]";
        } else if let (true, Some(v)) = (in_test, line.strip_prefix("name")) {
            out.push(v.trim_start_matches([' ', '=']).trim_matches('"').to_string());
        }
    }
    out
}

/// The binaries docs/testing.md describes: its list items that start with one in
/// backticks (`` * `semantics`: ``).
fn described_binaries(testing: &str) -> BTreeSet<String> {
    testing
        .lines()
        .filter_map(|l| l.strip_prefix("* `"))
        .filter_map(|l| l.split_once("`:").map(|(name, _)| name.to_string()))
        .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

#[test]
fn testing_describes_every_test_binary() {
    let testing = fs::read_to_string(workspace().join("docs/testing.md")).unwrap();
    let described = described_binaries(&testing);
    let binaries = test_binaries();
    assert!(binaries.len() >= 10, "tests/Cargo.toml: only {binaries:?}");
    let missing: Vec<_> = binaries.iter().filter(|b| !described.contains(*b)).collect();
    assert!(missing.is_empty(), "docs/testing.md does not describe the test binaries {missing:?} (a list item \"* `NAME`: ...\" each)");
    let gone: Vec<_> = described.iter().filter(|d| !binaries.contains(d)).collect();
    assert!(gone.is_empty(), "docs/testing.md describes {gone:?}, which tests/Cargo.toml does not have");
}

#[test]
fn testing_check_sees_a_binary_left_out() {
    let testing = fs::read_to_string(workspace().join("docs/testing.md")).unwrap();
    assert!(described_binaries(&testing).contains("maps"));
    assert!(!described_binaries(&testing.replace("* `maps`:", "* maps:")).contains("maps"));
}

// ---------------------------------------------------------------------------------
// Adding a backend: the places of docs/layout.md's recipe

/// A place of the recipe: where, whether `system` has it too, how it is found.
type Place = (&'static str, bool, fn(&str) -> bool);

/// Where a backend must appear outside the places the compiler checks (an exhaustive
/// `match` over `Backend` fails to build without its arm): (the place as the recipe
/// in docs/layout.md writes it, NAME standing for the backend's name, whether `system`
/// has it too, and what proves it there).
const PLACES: &[Place] = &[
    ("select/src/lib.rs", true, |n| has("select/src/lib.rs", &format!("c\"{n}\""))),
    ("backends/src/lib.rs", true, |n| has("backends/src/lib.rs", &format!("pub mod {n} {{"))),
    ("backends/Cargo.toml", false, |n| has("backends/Cargo.toml", &format!("\n{n} = "))),
    ("shim/src/backend/NAME.rs", true, |n| has(&format!("shim/src/backend/{n}.rs"), "pub static DESCRIPTOR: Descriptor")),
    ("shim/src/backend/mod.rs", true, |n| has("shim/src/backend/mod.rs", &format!("=> &{n}::DESCRIPTOR"))),
    ("shim/Cargo.toml", false, |n| has("shim/Cargo.toml", &format!("\"{n}\""))),
    ("crate/src/NAME.rs", true, |n| workspace().join(format!("crate/src/{n}.rs")).is_file()),
    ("crate/src/lib.rs", true, |n| has("crate/src/lib.rs", &format!("mod {n};"))),
    ("crate/Cargo.toml", false, |n| has("crate/Cargo.toml", &format!("\n{n} = "))),
    ("vendor/backends.txt", false, |n| has("vendor/backends.txt", &format!("\n{n} "))),
    ("buildpack/artifact.sh", false, |n| has("buildpack/artifact.sh", &format!(" {n} "))),
    ("tests/harness.rs", true, |n| has("tests/harness.rs", &format!("\"{n}\""))),
];

fn has(file: &str, text: &str) -> bool {
    fs::read_to_string(workspace().join(file)).is_ok_and(|t| t.contains(text))
}

/// The places of the recipe where backend `name` is missing.
fn missing_places(name: &str) -> Vec<&'static str> {
    PLACES
        .iter()
        .filter(|(_, system_too, _)| *system_too || name != "system")
        .filter(|(_, _, found)| !found(name))
        .map(|(p, _, _)| *p)
        .collect()
}

#[test]
fn every_backend_has_every_place_of_the_recipe() {
    let mut gaps = Vec::new();
    for backend in allocshim_select::ALL {
        let name = backend.name().to_str().unwrap();
        for place in missing_places(name) {
            gaps.push(format!("{name}: {place}"));
        }
    }
    assert!(gaps.is_empty(), "backends missing from places of the recipe (docs/layout.md, \"Adding a backend\"):\n  {}", gaps.join("\n  "));
}

#[test]
fn the_recipe_names_every_place_and_a_new_backend_misses_them_all() {
    let layout = fs::read_to_string(workspace().join("docs/layout.md")).unwrap();
    let recipe = layout.split("\n## Adding a backend").nth(1).expect("docs/layout.md: no section \"## Adding a backend\"");
    let recipe = recipe.split("\n## ").next().unwrap();
    let words = code_words(recipe);
    for (place, _, _) in PLACES {
        assert!(words.contains(place), "docs/layout.md's recipe does not name `{place}`");
    }
    // A fifth backend that exists only in the list: every place reports it.
    assert_eq!(missing_places("fakemalloc"), PLACES.iter().map(|(p, _, _)| *p).collect::<Vec<_>>());
}
