# Builtins-only stand-ins for what nixpkgs gives nix/package.nix, so that the package (and the
# flake around it, tests/nix/flake-refs.nix) evaluates on a machine without nixpkgs. Only what
# the files use is here: a new use fails with "attribute … missing", the cue to add it.
rec {
  # Any package argument: derivation-shaped, and it remembers its nixpkgs attribute name.
  stubPackage = attr: {
    type = "derivation";
    nixpkgsAttr = attr;
    name = attr;
    outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" attr)}-${attr}";
  };

  lib = {
    importTOML = path: builtins.fromTOML (builtins.readFile path);
    # A file set is the list of its paths.
    fileset = {
      unions = sets: builtins.concatLists (map (s: if builtins.isList s then s else [ s ]) sets);
      toSource =
        { root, fileset }:
        {
          inherit root;
          fileset = if builtins.isList fileset then fileset else [ fileset ];
        };
    };
    makeBinPath = packages: builtins.concatStringsSep ":" (map (p: "${p}/bin") packages);
    platforms.linux = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };

  # The derivation's attributes as given (also in the `finalAttrs:` form), with overrideAttrs.
  withOverride =
    attrs:
    attrs
    // {
      overrideAttrs =
        f:
        let
          r = f attrs;
        in
        withOverride (attrs // (if builtins.isFunction r then r attrs else r));
    };
  rustPlatform.buildRustPackage =
    args:
    let
      attrs = if builtins.isFunction args then args attrs else args;
    in
    withOverride attrs;

  # callPackage: `lib` and `rustPlatform` as above, a stub package for every other argument.
  callPackage =
    fn: overrides:
    let
      f = if builtins.isFunction fn then fn else import fn;
      given = {
        inherit lib rustPlatform;
      }
      // overrides;
    in
    f (builtins.mapAttrs (name: _: given.${name} or (stubPackage name)) (builtins.functionArgs f));
}
