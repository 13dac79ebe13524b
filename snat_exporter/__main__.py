from snat_exporter.cli import main

raise SystemExit(main())
