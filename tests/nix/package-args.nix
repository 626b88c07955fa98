# What nix/package.nix asks of its build, evaluated without nixpkgs (builtins only), for
# tests/nix-sandbox-check.sh, which runs the package's check phase in a sandbox-like
# environment here:
#
#   nix-instantiate --eval --strict --json --readonly-mode tests/nix/package-args.nix
#
# The package's function arguments are stubs: `lib` has only the few functions package.nix
# uses (one it starts using fails here with "attribute … missing": add it), every package
# argument is a derivation-shaped set that remembers its nixpkgs attribute name, and
# `rustPlatform.buildRustPackage` returns the attributes it is given. So the inputs and the
# test selection below are read from package.nix itself and cannot drift from it.
let
  root = ../..;

  stubs = import ./package-stubs.nix;

  package = stubs.callPackage (root + "/nix/package.nix") { };

  # "/abs/repo/src" -> "src"
  relative =
    path:
    let
      prefix = toString root + "/";
      s = toString path;
    in
    if builtins.substring 0 (builtins.stringLength prefix) s == prefix then
      builtins.substring (builtins.stringLength prefix) (builtins.stringLength s) s
    else
      throw "nix/package.nix: ${s} is outside the repository";

  attrs = list: map (p: p.nixpkgsAttr) list;
in
{
  inherit (package) pname version;
  doCheck = package.doCheck or true;
  cargoTestFlags = package.cargoTestFlags or [ ];
  checkFlags = package.checkFlags or [ ];
  # strictDeps (buildRustPackage's default): only the native inputs are on the check phase's PATH.
  nativeBuildInputs = attrs (package.nativeBuildInputs or [ ]);
  nativeCheckInputs = attrs (package.nativeCheckInputs or [ ]);
  # Exported to the builder's environment.
  env = package.env or { };
  # The files of the source, relative to the repository.
  source = map relative package.src.fileset;
}
