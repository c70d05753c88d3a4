from mcp_supervisor.cli import main

raise SystemExit(main())
