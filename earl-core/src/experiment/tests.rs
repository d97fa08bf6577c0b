//! The shared loader on small files written by the tests: `extends` order and cycles, the `${VAR}` rule, located
//! errors, paths relative to the file that set them, and sections split off for another owner.
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::*;

/// A fragment type as the families write theirs: every field optional, unknown fields denied.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Frag {
    a: Option<i64>,
    b: Option<String>,
    list: Option<Vec<String>>,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(p: &Path) -> crate::Result<Layers> {
    Layers::load::<Frag>(p, &|k| k.starts_with("other_"))
}

#[test]
fn extends_applies_bases_in_order_and_the_file_last() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("base")).unwrap();
    write(&d.path().join("base"), "one.toml", "a = 1\nb = \"one\"\nlist = [\"./x\"]\n");
    write(&d.path().join("base"), "two.toml", "extends = \"one.toml\"\nb = \"two\"\n");
    let top = write(d.path(), "top.toml", "extends = [\"base/two.toml\"]\na = 3\n");
    let layers = load(&top).unwrap();
    let f: Frag = layers.deserialize().unwrap();
    assert_eq!(f, Frag { a: Some(3), b: Some("two".into()), list: Some(vec!["./x".into()]) });
    assert_eq!(layers.origin("b").unwrap().file, d.path().join("base").join("two.toml"));
    assert_eq!(layers.origin("a").unwrap().line, 2);
    // `./` is relative to the file that set the key, not to the loaded one.
    let r = Resolver::new(&layers, &no_env);
    assert_eq!(r.paths("list", &f.list.unwrap()).unwrap(), vec![d.path().join("base").join("./x")]);
    assert_eq!(r.path("b", "data/y").unwrap(), PathBuf::from("data/y"));
    write(d.path(), "a.toml", "extends = \"b.toml\"\n");
    write(d.path(), "b.toml", "extends = \"a.toml\"\n");
    let e = load(&d.path().join("a.toml")).unwrap_err().to_string();
    assert!(e.contains("cycle") && e.contains("a.toml"), "{e}");
    let e = load(&write(d.path(), "bad.toml", "extends = 3\n")).unwrap_err().to_string();
    assert!(e.contains("line 1: extends must be a file name"), "{e}");
    let e = load(&write(d.path(), "gone.toml", "extends = \"missing.toml\"\n")).unwrap_err().to_string();
    assert!(e.contains("missing.toml"), "{e}");
}

#[test]
fn variables_have_one_rule() {
    let env = |k: &str| match k {
        "SET" => Some("v".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    assert_eq!(expand_vars("a/${SET}/${UNSET:-d}/${SET:-d}/$x/${EMPTY:-e}", &env).unwrap(), "a/v/d/v/$x/e");
    assert_eq!(expand_vars("${UNSET:-}", &env).unwrap(), "");
    assert!(expand_vars("${UNSET}", &env).unwrap_err().contains("UNSET is not set"));
    assert!(expand_vars("${EMPTY}", &env).unwrap_err().contains("EMPTY is not set"));
    assert!(expand_vars("${SET", &env).unwrap_err().contains("unterminated"));
    assert!(expand_vars("${a b}", &env).unwrap_err().contains("not a variable reference"));
    // Through a resolver, a missing variable names the key and the file (and line) that set it.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "base.toml", "\nb = \"${NOT_SET_ANYWHERE}/x\"\n");
    let layers = load(&write(d.path(), "top.toml", "extends = \"base.toml\"\n")).unwrap();
    let e = Resolver::new(&layers, &env).path("b", "${NOT_SET_ANYWHERE}/x").unwrap_err().to_string();
    assert!(e.contains("base.toml: invalid config: line 2: b: environment variable NOT_SET_ANYWHERE"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn errors_are_one_line_and_located() {
    let d = tempfile::tempdir().unwrap();
    let e = load(&write(d.path(), "t.toml", "a = 1\n\naa = 2\n")).unwrap_err().to_string();
    assert!(e.ends_with("t.toml: invalid config: line 3, column 6: unknown field `aa`"), "{e}");
    let e = load(&write(d.path(), "t.toml", "b = \"x\"\na = \"ten\"\n")).unwrap_err().to_string();
    assert!(e.contains("line 2, column 5: a: invalid type"), "{e}");
    let e = load(&write(d.path(), "t.toml", "a = \n")).unwrap_err().to_string();
    assert!(e.contains("t.toml: invalid config: line 1, column") && !e.contains('\n'), "{e}");
    // The error names the base file where the bad key is, not the file that was loaded.
    write(d.path(), "base.toml", "typo = 1\n");
    let e = load(&write(d.path(), "t.toml", "extends = \"base.toml\"\n")).unwrap_err().to_string();
    assert!(e.contains("base.toml: invalid config: line 1, column 8: unknown field `typo`"), "{e}");
    let layers = load(&write(d.path(), "t.toml", "a = 1\n")).unwrap();
    let r = Resolver::new(&layers, &no_env);
    assert!(r.err("a", "too big").to_string().ends_with("t.toml: invalid config: line 1: a: too big"));
    assert!(r.err("b", "needed").to_string().ends_with("t.toml: invalid config: b: needed"));
    assert!(r.need(None::<i64>, "b").unwrap_err().to_string().contains("missing required field `b`"));
}

#[test]
fn a_section_owned_elsewhere_is_split_off_unchecked() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "t.toml", "a = 1\nother_x = \"anything\"\nother_y = [1, 2]\n");
    let mut layers = load(&p).unwrap();
    let section = layers.split_off(&|k| k.starts_with("other_"));
    assert_eq!(layers.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(section.keys().collect::<Vec<_>>(), vec!["other_x", "other_y"]);
    assert_eq!(section.origin("other_y").unwrap().line, 3);
    assert_eq!(section.get("other_x").and_then(|v| v.as_str()), Some("anything"));
    // Without the claim, the same keys are unknown fields.
    let e = Layers::load::<Frag>(&p, &|_| false).unwrap_err().to_string();
    assert!(e.contains("unknown field `other_x`"), "{e}");
    assert_eq!(Layers::parse_fragment::<Frag>(&p, &|k| k.starts_with("other_")).unwrap().a, Some(1));
}
