from snat_exporter.simulator.cli import main

raise SystemExit(main())
