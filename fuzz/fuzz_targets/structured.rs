#![no_main]
//! Starts from a valid example fleet and lets the fuzz bytes script a few edits (replace, remove,
//! insert, rename, copy anywhere in the JSON tree, with values biased towards addresses, prefixes,
//! names, keys and boundary numbers), so that most inputs still validate and reach planning.

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

mod common;

const BASES: &[&str] = &[
    include_str!("../seeds/seed-000.json"),
    include_str!("../seeds/seed-001.json"),
    include_str!("../seeds/seed-002.json"),
    include_str!("../seeds/seed-004.json"),
];

const STRINGS: &[&str] = &[
    "", "mesh", "hubAndSpoke", "0.0.0.0/0", "::/0", "10.0.0.0/8", "10.50.0.0/24", "10.50.0.0/30",
    "10.50.0.0/31", "10.50.0.0/32", "10.50.0.1", "10.50.0.255", "10.50.0.1/24", "192.168.1.0/24",
    "255.255.255.252/30", "fd10::/64", "fd10::/126", "fd10::/127", "fd10::1", "fd10::1/64",
    "ffff:ffff:ffff:ffff::/64", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126", "::ffff:10.0.0.1",
    "::", "203.0.113.10:51820", "[fd10::1]:51820", "host.example:0", "host.example:65536", "[::1]",
    "group:workers", "group:", "owner:bob@contractor.example", "bob@contractor.example", "*",
    "443/tcp", "1-65535/udp", "icmp", "0/tcp", "65535-1/udp", "2027-03-31T00:00:00Z",
    "0000-01-01T00:00:00+23:59", "9999-12-31T23:59:60-23:59", "2026-02-29T00:00:00Z",
    "2024-02-29t23:59:59.999999999999z", "wg0", "eth0", "a.age", "../x.age", "/etc/shadow",
    "a\nb", "\u{1b}[31m", "\u{0}", "é", "a b", "-", ".", "..",
    "j65iAJ6NC3HojTdVgriVYdBrd3UzFNydYKCvugCZnBM=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "//////////////////////////////////////////8=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",
];

const NUMBERS: &[u64] = &[
    0, 1, 2, 3, 20, 25, 62, 63, 253, 254, 255, 256, 1279, 1280, 9000, 9001, 51820, 65535, 65536,
    u32::MAX as u64 - 2, u32::MAX as u64, 1 << 32, i64::MAX as u64, u64::MAX - 1, u64::MAX,
];

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(base) = u.choose(BASES) else { return };
    let mut doc: Value = serde_json::from_str(base).expect("seed fleets are JSON");
    let mut pool = Vec::new();
    names(&doc, &mut pool);
    let edits = u.int_in_range(0..=12u8).unwrap_or(0);
    for _ in 0..edits {
        if edit(&mut u, &mut doc, &pool).is_err() {
            break;
        }
    }
    // What `--now` (years 0000–9999, any offset) and `--expiry-warning-days` (u32) can give.
    let now = if u.arbitrary().unwrap_or(false) {
        u.int_in_range(-62_167_219_200 - 86_400..=253_402_300_799 + 86_400).unwrap_or(0)
    } else {
        1_780_272_000
    };
    let expiry_warning = i64::from(u.arbitrary::<u32>().unwrap_or(14)) * 86_400;
    let text = if u.arbitrary().unwrap_or(true) {
        serde_json::to_string_pretty(&doc)
    } else {
        serde_json::to_string(&doc)
    };
    common::run(&text.expect("a Value serializes"), now, expiry_warning);
});

/// The JSON pointer of a random node (the root is ""): a walk down that stops at each container
/// with probability 1/4, so shallow and deep fields both get picked.
fn pick(u: &mut Unstructured, doc: &Value) -> Result<String> {
    let (mut at, mut v) = (String::new(), doc);
    loop {
        let n = match v {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if n == 0 || u.ratio(1, 4)? {
            return Ok(at);
        }
        let i = u.choose_index(n)?;
        v = match v {
            Value::Object(m) => {
                let (k, child) = m.iter().nth(i).unwrap();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                child
            }
            Value::Array(a) => {
                at.push_str(&format!("/{i}"));
                &a[i]
            }
            _ => unreachable!(),
        };
    }
}

/// Every object key in the document: host, member, client, network and group names.
fn names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                out.push(k.clone());
                names(child, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| names(c, out)),
        Value::String(s) => out.push(s.clone()),
        _ => {}
    }
}

fn edit(u: &mut Unstructured, doc: &mut Value, pool: &[String]) -> Result<()> {
    let target = pick(u, doc)?;
    match u.int_in_range(0..=4u8)? {
        // Replace a node, mostly by one of the same type so that the fleet still parses.
        0 => {
            let node = doc.pointer_mut(&target).unwrap();
            *node = match node {
                Value::String(_) if u.ratio(3, 4)? => Value::String(string(u, pool)?),
                Value::Number(_) if u.ratio(3, 4)? => json!(*u.choose(NUMBERS)?),
                Value::Bool(b) if u.ratio(3, 4)? => Value::Bool(!*b),
                _ => value(u, pool, 2)?,
            };
        }
        // Remove a node.
        1 => {
            let Some((parent, last)) = target.rsplit_once('/') else { return Ok(()) };
            match doc.pointer_mut(parent).unwrap() {
                Value::Object(m) => {
                    m.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Value::Array(a) => {
                    a.remove(last.parse::<usize>().unwrap());
                }
                _ => unreachable!(),
            }
        }
        // Insert into an object or an array.
        2 => {
            let new = value(u, pool, 2)?;
            match doc.pointer_mut(&target).unwrap() {
                Value::Object(m) => {
                    m.insert(key(u, pool)?, new);
                }
                Value::Array(a) => {
                    let i = u.int_in_range(0..=a.len())?;
                    a.insert(i, new);
                }
                _ => {}
            }
        }
        // Rename a key (a member becomes another host, a network gets a hostile name, ...).
        3 => {
            if let Value::Object(m) = doc.pointer_mut(&target).unwrap()
                && !m.is_empty()
            {
                let old = m.keys().nth(u.choose_index(m.len())?).unwrap().clone();
                let child = m.remove(&old).unwrap();
                m.insert(key(u, pool)?, child);
            }
        }
        // Copy one subtree over another (a member into clients, a topology into another network).
        _ => {
            let src = doc.pointer(&pick(u, doc)?).unwrap().clone();
            *doc.pointer_mut(&target).unwrap() = src;
        }
    }
    Ok(())
}

fn key(u: &mut Unstructured, pool: &[String]) -> Result<String> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 | 1 => u.choose(pool)?.clone(),
        2 => u.choose(STRINGS)?.to_string(),
        _ => u.arbitrary::<&str>()?.to_owned(),
    })
}

fn string(u: &mut Unstructured, pool: &[String]) -> Result<String> {
    Ok(match u.int_in_range(0..=6u8)? {
        0 | 1 => u.choose(STRINGS)?.to_string(),
        2 => u.choose(pool)?.clone(),
        3 => {
            // An IPv4 prefix, host bits cleared or not.
            let (a, len) = (u.arbitrary::<u32>()?, u.int_in_range(0..=33u8)?);
            let mask = u32::MAX.checked_shl(32u32.saturating_sub(len.into())).unwrap_or(0);
            let a = if u.arbitrary()? { a & mask } else { a };
            format!("{}/{len}", std::net::Ipv4Addr::from(a))
        }
        4 => {
            let (a, len) = (u.arbitrary::<u128>()?, u.int_in_range(0..=129u8)?);
            let mask = u128::MAX.checked_shl(128u32.saturating_sub(len.into())).unwrap_or(0);
            let a = if u.arbitrary()? { a & mask } else { a };
            format!("{}/{len}", std::net::Ipv6Addr::from(a))
        }
        5 => match u.int_in_range(0..=2u8)? {
            0 => std::net::Ipv4Addr::from(u.arbitrary::<u32>()?).to_string(),
            1 => std::net::Ipv6Addr::from(u.arbitrary::<u128>()?).to_string(),
            _ => format!("{}:{}", u.choose(pool)?, u.arbitrary::<u32>()?),
        },
        _ => u.arbitrary::<&str>()?.to_owned(),
    })
}

fn value(u: &mut Unstructured, pool: &[String], depth: u8) -> Result<Value> {
    let pick = u.int_in_range(0..=if depth == 0 { 4 } else { 10u8 })?;
    Ok(match pick {
        0 | 1 => Value::String(string(u, pool)?),
        2 => json!(*u.choose(NUMBERS)?),
        3 => match u.int_in_range(0..=3u8)? {
            0 => json!(u.arbitrary::<u64>()?),
            1 => json!(u.arbitrary::<i64>()?),
            2 => json!(u.arbitrary::<f64>()?),
            _ => Value::Null,
        },
        4 => Value::Bool(u.arbitrary()?),
        5 => {
            let n = u.int_in_range(0..=3u8)?;
            (0..n).map(|_| value(u, pool, depth - 1)).collect::<Result<Vec<_>>>()?.into()
        }
        6 => {
            let hubs: Vec<String> =
                (0..u.int_in_range(0..=2u8)?).map(|_| u.choose(pool).cloned()).collect::<Result<_>>()?;
            if u.arbitrary()? { json!("mesh") } else { json!({"hubAndSpoke": {"hubs": hubs}}) }
        }
        7 => json!({"id": *u.choose(NUMBERS)?}),
        8 => json!({"publicKey": *u.choose(&STRINGS[STRINGS.len() - 4..])?, "id": u.int_in_range(0..=300u64)?}),
        9 => json!({"from": u.choose(pool)?, "to": u.choose(pool)?, "ports": [string(u, pool)?]}),
        _ => {
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=3u8)? {
                m.insert(key(u, pool)?, value(u, pool, depth - 1)?);
            }
            Value::Object(m)
        }
    })
}
