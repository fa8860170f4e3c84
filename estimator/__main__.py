"""`python -m estimator`: serve estimator.service on AUGSERVE_ESTIMATOR_HOST:AUGSERVE_ESTIMATOR_PORT."""

from __future__ import annotations

import uvicorn

from estimator.service import create_app
from estimator.settings import EstimatorSettings


def main() -> None:
    settings = EstimatorSettings()
    uvicorn.run(create_app(settings), host=settings.estimator_host, port=settings.estimator_port, log_level="info")


if __name__ == "__main__":
    main()
