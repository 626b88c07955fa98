//! Sources: which file belongs to which host and interface.

use super::*;

/// One wg-quick file of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub host: String,
    /// The interface (network) name: the file name without `.conf`, as wg-quick takes it.
    pub network: String,
    pub path: PathBuf,
    /// How reports name the file: as given on the command line.
    pub display: String,
}

/// Parses `HOST=PATH` or `HOST:IFACE=PATH`.
pub fn source_from_arg(arg: &str) -> Result<Source, String> {
    let (name, path) = arg
        .split_once('=')
        .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        .ok_or_else(|| {
            format!("{arg:?}: name each file as HOST=PATH, e.g. cp=/etc/wireguard/wg0.conf")
        })?;
    let (host, iface) = match name.split_once(':') {
        Some((h, i)) => (h, Some(i.to_owned())),
        None => (name, None),
    };
    syntax::check_name(host).map_err(|e| format!("{arg:?}: host {e}"))?;
    let path = PathBuf::from(path);
    let network = match iface {
        Some(i) => i,
        None => path
            .file_name()
            .map(|f| f.to_string_lossy().trim_end_matches(".conf").to_owned())
            .unwrap_or_default(),
    };
    syntax::check_interface(&network).map_err(|e| {
        format!("{arg:?}: {e} (the interface is the file name without .conf; name it with HOST:IFACE=PATH)")
    })?;
    Ok(Source {
        host: host.to_owned(),
        network,
        display: display_path(&path),
        path,
    })
}

/// Every `DIR/HOST/IFACE.conf`.
pub fn sources_in_dir(dir: &Path) -> Result<Vec<Source>, String> {
    let read = |d: &Path| {
        let mut names: Vec<(String, PathBuf)> = std::fs::read_dir(d)
            .map_err(|e| format!("{}: cannot read the directory: {e}", d.display()))?
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        names.sort();
        Ok::<_, String>(names)
    };
    let mut out = Vec::new();
    for (host, path) in read(dir)? {
        if !path.is_dir() {
            continue;
        }
        syntax::check_name(&host).map_err(|e| format!("{}: host directory {e}", path.display()))?;
        for (file, file_path) in read(&path)? {
            let Some(network) = file.strip_suffix(".conf") else {
                continue;
            };
            if !file_path.is_file() || syntax::check_interface(network).is_err() {
                continue;
            }
            out.push(Source {
                host: host.clone(),
                network: network.to_owned(),
                display: display_path(&file_path),
                path: file_path,
            });
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{}: no HOST/IFACE.conf files (e.g. cp/wg0.conf) in this directory",
            dir.display()
        ));
    }
    Ok(out)
}

pub(super) fn display_path(p: &Path) -> String {
    let s = p.display().to_string();
    s.strip_prefix("./").map(str::to_owned).unwrap_or(s)
}

/// A file's text, held in zeroizing memory (it holds a private key).
pub struct Input {
    pub source: Source,
    pub text: Zeroizing<String>,
}

/// Reads one file into zeroizing memory.
pub fn read_input(source: Source) -> Result<Input, String> {
    let mut bytes = Zeroizing::new(
        std::fs::read(&source.path)
            .map_err(|e| format!("{}: cannot read this wg-quick file: {e}", source.display))?,
    );
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Input {
            source,
            text: Zeroizing::new(text),
        }),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(format!("{}: not a text file (not UTF-8)", source.display))
        }
    }
}
