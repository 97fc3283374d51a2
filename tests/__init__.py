"""The suite's own package. A regular package, not a namespace one: a dependency that wrongly installs a top-level
`tests` package (iterative-stratification does) would otherwise shadow this folder, and `from tests.conftest
import ...` would fail."""
