//! The quality suite's configuration: cases (what to simulate, how to split,
//! which pixels to score) and the arms run on each (`benches/quality/*.toml`).
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::compare::ScorePixels;
use crate::error::{Error, Result};
use crate::simulate::SimConfig;

/// One way of reconstructing a case's test half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arm {
    /// A gridsize-1 PINN trained on the train half with the case's preset,
    /// then `ptycho infer` with its defaults.
    PinnGs1,
    /// The same at gridsize 2.
    PinnGs2,
    /// The supervised baseline (gridsize 1; it trains on the train half's
    /// true patches).
    Supervised,
    /// `ptycho reconstruct` with no settings: ePIE with the data-driven choice.
    Epie,
    /// `ptycho reconstruct --algorithm gradient` with no other settings.
    Gradient,
    /// `ptycho infer --refine auto` on the gridsize-2 bundle (or the case's
    /// `hybrid_network`): ePIE, with the settings it chooses, from the
    /// network's object.
    Hybrid,
    /// `ptycho infer --select` on the same bundle: the network, ePIE or the
    /// hybrid, whichever predicts held-out patterns best
    /// ([`crate::recon::select`]).
    Best,
    /// A constant object (amplitude 1, phase 0): what every method must beat.
    Constant,
    /// ePIE on a grid of settings, scored against the truth, the best kept:
    /// an oracle no user has, that says how far the data-driven choice is
    /// from the best settings on this case.
    EpieOracle,
}

impl Arm {
    /// Every arm, in table order.
    pub const ALL: [Arm; 9] = [
        Arm::PinnGs1,
        Arm::PinnGs2,
        Arm::Supervised,
        Arm::Epie,
        Arm::Gradient,
        Arm::Hybrid,
        Arm::Best,
        Arm::Constant,
        Arm::EpieOracle,
    ];

    /// The name in configs and tables (`pinn-gs1`, …).
    pub fn name(self) -> &'static str {
        match self {
            Arm::PinnGs1 => "pinn-gs1",
            Arm::PinnGs2 => "pinn-gs2",
            Arm::Supervised => "supervised",
            Arm::Epie => "epie",
            Arm::Gradient => "gradient",
            Arm::Hybrid => "hybrid",
            Arm::Best => "best",
            Arm::Constant => "constant",
            Arm::EpieOracle => "epie-oracle",
        }
    }

    /// Whether this arm trains a network.
    pub fn trains(self) -> bool {
        matches!(
            self,
            Arm::PinnGs1 | Arm::PinnGs2 | Arm::Supervised | Arm::Hybrid | Arm::Best
        )
    }
}

impl std::str::FromStr for Arm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Arm::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Arm::ALL.iter().map(|a| a.name()).collect();
            Error::config("arms", format!("`{s}` is not one of {}", names.join(", ")))
        })
    }
}

/// Which networks a case trains, and how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaseTraining {
    /// `quick` or `paper` ([`crate::train::TrainConfig`] presets).
    pub preset: String,
    /// Overrides of the preset (`None`: the preset's).
    pub epochs: Option<usize>,
    pub n_groups: Option<usize>,
    /// Seeds the network's initialisation, the validation split and the batches.
    pub seed: u64,
}

impl Default for CaseTraining {
    fn default() -> Self {
        CaseTraining {
            preset: "quick".into(),
            epochs: None,
            n_groups: None,
            seed: 0,
        }
    }
}

/// One case: a simulated dataset split in two (the first part trains, the
/// second is reconstructed by every arm and compared with its truth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityCase {
    /// A short name (folder and table key): letters, digits, `-` and `_`.
    pub name: String,
    /// What this case asks (shown in the report).
    #[serde(default)]
    pub description: String,
    /// The simulation whose first part trains (and, without `test_sim`,
    /// whose second part is the test).
    pub sim: SimConfig,
    /// A different simulation whose second part is the test instead
    /// (generalisation: train on one object family, test on another; a
    /// sparse test scan of an object the networks saw densely scanned).
    #[serde(default)]
    pub test_sim: Option<SimConfig>,
    /// Fraction of the y range that trains (`Dataset::split` along y).
    #[serde(default = "half")]
    pub split_fraction: f64,
    /// `region` or `illuminated` (sparse and overlap-free cases).
    #[serde(default)]
    pub score_pixels: ScorePixels,
    /// Arms to run; `None`: the suite's.
    #[serde(default)]
    pub arms: Option<Vec<Arm>>,
    /// Training of the networks (`None`: the suite's).
    #[serde(default)]
    pub training: Option<CaseTraining>,
    /// Another case whose trained networks this case reuses (it must train
    /// on the same data): a generalisation case tests them elsewhere.
    #[serde(default)]
    pub reuse_networks_of: Option<String>,
    /// The network the `hybrid` arm starts from: `pinn-gs2` (default) or
    /// `pinn-gs1` (sparse scans, whose groups would reach beyond a
    /// gridsize-2 network's canvas).
    #[serde(default = "gs2")]
    pub hybrid_network: Arm,
}

fn gs2() -> Arm {
    Arm::PinnGs2
}

fn half() -> f64 {
    0.5
}

/// A suite: cases and the defaults they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualitySuite {
    pub name: String,
    /// What the suite is for, and which seeds are held out (report) or
    /// development (tuning).
    #[serde(default)]
    pub description: String,
    /// Arms of every case that does not list its own.
    pub arms: Vec<Arm>,
    /// Training of every case that does not give its own.
    #[serde(default)]
    pub training: CaseTraining,
    /// `auto`, `cpu`, `cuda` or `cuda:N`, for training, inference and the solvers.
    #[serde(default = "auto")]
    pub device: String,
    #[serde(rename = "case")]
    pub cases: Vec<QualityCase>,
}

fn auto() -> String {
    "auto".into()
}

/// The default suite (about an hour on a 2-core CPU; docs/quality.md).
pub const DEFAULT_SUITE_TOML: &str = include_str!("../../benches/quality/default.toml");
/// A few cases for iteration (`--quick`).
pub const QUICK_SUITE_TOML: &str = include_str!("../../benches/quality/quick.toml");

impl QualitySuite {
    /// Parses a suite (unknown keys are errors) and validates it. Relative
    /// PNG paths of the simulations are kept as written; see
    /// [`resolve_paths`](Self::resolve_paths).
    pub fn from_toml(text: &str) -> Result<QualitySuite> {
        let suite: QualitySuite = toml::from_str(text).map_err(|e| Error::config("quality suite", e.to_string()))?;
        suite.validate()?;
        Ok(suite)
    }

    /// Makes every relative file path of the simulations (PNG objects,
    /// probe files) relative to `base` instead of the working directory.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        for c in &mut self.cases {
            for sim in std::iter::once(&mut c.sim).chain(c.test_sim.as_mut()) {
                for p in [&mut sim.object.path, &mut sim.probe.path].into_iter().flatten() {
                    if p.is_relative() {
                        *p = base.join(&*p);
                    }
                }
            }
        }
    }

    /// The suite with every object or probe path under `base` written
    /// relative to it (for reports: no machine's folders in shared files).
    pub fn with_paths_relative_to(&self, base: &Path) -> QualitySuite {
        let mut s = self.clone();
        for c in &mut s.cases {
            for sim in std::iter::once(&mut c.sim).chain(c.test_sim.as_mut()) {
                for p in [&mut sim.object.path, &mut sim.probe.path].into_iter().flatten() {
                    if let Ok(rel) = p.strip_prefix(base) {
                        *p = rel.to_path_buf();
                    }
                }
            }
        }
        s
    }

    /// The built-in default suite (its paths relative to the repository
    /// root, this crate's folder).
    pub fn default_suite() -> Result<QualitySuite> {
        let mut s = QualitySuite::from_toml(DEFAULT_SUITE_TOML)?;
        s.resolve_paths(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        Ok(s)
    }

    /// The built-in quick suite.
    pub fn quick_suite() -> Result<QualitySuite> {
        let mut s = QualitySuite::from_toml(QUICK_SUITE_TOML)?;
        s.resolve_paths(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        Ok(s)
    }

    /// The arms of `case`.
    pub fn arms_of<'a>(&'a self, case: &'a QualityCase) -> &'a [Arm] {
        case.arms.as_deref().unwrap_or(&self.arms)
    }

    /// The training of `case`.
    pub fn training_of<'a>(&'a self, case: &'a QualityCase) -> &'a CaseTraining {
        case.training.as_ref().unwrap_or(&self.training)
    }

    /// Keeps only the cases named in `names` (all when empty); an unknown
    /// name is an error. Cases whose networks a kept case reuses stay too.
    pub fn select(&mut self, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        for n in names {
            if !self.cases.iter().any(|c| &c.name == n) {
                return Err(Error::config("cases", format!("the suite has no case `{n}`")));
            }
        }
        let wanted: Vec<String> = self
            .cases
            .iter()
            .filter(|c| names.contains(&c.name))
            .flat_map(|c| std::iter::once(c.name.clone()).chain(c.reuse_networks_of.clone()))
            .collect();
        self.cases.retain(|c| wanted.contains(&c.name));
        Ok(())
    }

    /// Checks every case (names, simulations, split, reuse links).
    pub fn validate(&self) -> Result<()> {
        if self.cases.is_empty() {
            return Err(Error::config("case", "a suite needs at least one case"));
        }
        crate::array::parse_device(&self.device)?;
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.cases.iter().enumerate() {
            let field = |f: &str| format!("case[{i}] ({}).{f}", c.name);
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err(Error::config(field("name"), "use letters, digits, `-` and `_`"));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(Error::config(field("name"), "two cases have this name"));
            }
            c.sim
                .validate()
                .map_err(|e| Error::config(field("sim"), e.to_string()))?;
            if let Some(t) = &c.test_sim {
                t.validate()
                    .map_err(|e| Error::config(field("test_sim"), e.to_string()))?;
                if t.size_px != c.sim.size_px {
                    return Err(Error::config(field("test_sim.size_px"), "must equal sim.size_px"));
                }
            }
            if !(c.split_fraction > 0.0 && c.split_fraction < 1.0) {
                return Err(Error::config(field("split_fraction"), "must be in (0, 1)"));
            }
            let t = self.training_of(c);
            if !matches!(t.preset.as_str(), "quick" | "paper") {
                return Err(Error::config(field("training.preset"), "must be quick or paper"));
            }
            if let Some(other) = &c.reuse_networks_of {
                let Some(o) = self.cases[..i].iter().find(|o| &o.name == other) else {
                    return Err(Error::config(
                        field("reuse_networks_of"),
                        format!("`{other}` must be an earlier case"),
                    ));
                };
                if o.sim != c.sim || o.split_fraction != c.split_fraction || self.training_of(o) != t {
                    return Err(Error::config(
                        field("reuse_networks_of"),
                        format!(
                            "`{other}` trains on other data or settings (sim, split_fraction, training must match)"
                        ),
                    ));
                }
            }
            if self.arms_of(c).is_empty() {
                return Err(Error::config(field("arms"), "at least one arm"));
            }
            if !matches!(c.hybrid_network, Arm::PinnGs1 | Arm::PinnGs2) {
                return Err(Error::config(field("hybrid_network"), "must be pinn-gs1 or pinn-gs2"));
            }
        }
        Ok(())
    }
}
