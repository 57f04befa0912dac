//! Compiles every `.proto` under `virt/` with protox (pure Rust, so a fresh
//! machine needs no `protoc`), generates the tonic bindings, writes the
//! encoded descriptor set for gRPC reflection, and generates the method
//! access table from the `(virt.common.v1.access)` method option.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost::Message;
use prost_reflect::{DescriptorPool, Value};

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_protos(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}

fn access_table(pool: &DescriptorPool) -> String {
    let ext = pool
        .get_extension_by_name("virt.common.v1.access")
        .expect("virt.common.v1.access extension is defined");
    let access_enum = pool
        .get_enum_by_name("virt.common.v1.Access")
        .expect("virt.common.v1.Access enum is defined");
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for service in pool.services() {
        if !service.full_name().starts_with("virt.") {
            continue;
        }
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            let options = method.options();
            let value = if options.has_extension(&ext) {
                match options.get_extension(&ext).as_ref() {
                    Value::EnumNumber(n) => *n,
                    other => panic!("{path}: access option has unexpected value {other:?}"),
                }
            } else {
                0
            };
            let variant = match access_enum.get_value(value).map(|v| v.name().to_owned()) {
                Some(name) if name == "ACCESS_READ_ONLY" => "ReadOnly",
                Some(name) if name == "ACCESS_READ_WRITE" => "ReadWrite",
                Some(name) if name == "ACCESS_ADMIN" => "Admin",
                _ => {
                    missing.push(path);
                    continue;
                }
            };
            rows.push((path, variant));
        }
    }
    assert!(
        missing.is_empty(),
        "every virt RPC needs option (virt.common.v1.access); missing on: {missing:#?}"
    );
    rows.sort();
    let mut out = String::from(
        "/// Every RPC of the virt API and who may call it, generated from the\n\
         /// `(virt.common.v1.access)` option in proto/. Sorted by path.\n\
         pub const METHOD_ACCESS: &[(&str, Access)] = &[\n",
    );
    for (path, variant) in rows {
        writeln!(out, "    ({path:?}, Access::{variant}),").expect("writing to a String");
    }
    out.push_str("];\n");
    out
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    collect_protos(&root.join("virt"), &mut files);
    println!("cargo:rerun-if-changed=virt");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let mut compiler = protox::Compiler::new([&root]).expect("protox compiler");
    compiler.include_imports(true).include_source_info(true);
    compiler
        .open_files(
            files
                .iter()
                .map(|f| f.strip_prefix(&root).expect("under root")),
        )
        .unwrap_or_else(|e| panic!("compiling protos: {e:?}"));
    let pool = compiler.descriptor_pool();
    let fds = compiler.file_descriptor_set();

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    std::fs::write(out_dir.join("virt_descriptor.bin"), fds.encode_to_vec())
        .expect("writing descriptor set");
    std::fs::write(out_dir.join("access_table.rs"), access_table(&pool))
        .expect("writing access table");

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        // prost's codec, but an undecodable request is INVALID_ARGUMENT (src/codec.rs).
        .codec_path("crate::codec::VirtCodec")
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating bindings: {e}"));
    name_default_stubs(&out_dir, &pool);
}

/// tonic's snake_case of a method name (heck's rules for CamelCase names).
fn snake(name: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// The default stubs tonic generates answer "Not yet implemented". Make each
/// one name its method and carry our NO_SUPPORT error detail, so a client
/// calling an RPC that a later change fills learns which one it was.
fn name_default_stubs(out_dir: &Path, pool: &DescriptorPool) {
    const STUB: &str = "Err(tonic::Status::unimplemented(\"Not yet implemented\"))";
    let mut packages: Vec<String> = pool
        .services()
        .filter(|s| s.full_name().starts_with("virt."))
        .map(|s| s.package_name().to_owned())
        .collect();
    packages.sort();
    packages.dedup();
    for package in packages {
        let file = out_dir.join(format!("{package}.rs"));
        let text = std::fs::read_to_string(&file).expect("generated file exists");
        let mut service: Option<prost_reflect::ServiceDescriptor> = None;
        let mut method: Option<String> = None;
        let mut out = String::with_capacity(text.len());
        let mut replaced = 0;
        for line in text.lines() {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("pub trait ") {
                let name = rest.split(':').next().unwrap_or("").trim();
                service = pool
                    .services()
                    .find(|s| s.package_name() == package && s.name() == name);
            } else if let Some(rest) = t.strip_prefix("async fn ") {
                method = rest.split('(').next().map(str::to_owned);
            }
            if t == STUB {
                let svc = service.as_ref().expect("stub inside a service trait");
                let m = method.as_deref().expect("stub inside a method");
                let desc = svc
                    .methods()
                    .find(|d| snake(d.name()) == m)
                    .unwrap_or_else(|| panic!("no method of {} maps to {m}", svc.full_name()));
                let path = format!("/{}/{}", svc.full_name(), desc.name());
                let indent = &line[..line.len() - t.len()];
                writeln!(out, "{indent}Err(crate::unimplemented_status({path:?}))")
                    .expect("to String");
                replaced += 1;
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        let expected: usize = pool
            .services()
            .filter(|s| s.package_name() == package)
            .map(|s| s.methods().len())
            .sum();
        assert_eq!(replaced, expected, "every stub of {package} was renamed");
        std::fs::write(&file, out).expect("rewriting generated file");
    }
}
