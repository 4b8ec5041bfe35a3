"""The benchmark (`medix-reward bench`): `run` measures and writes JSON, `report` renders the table and the plot;
`baseline`, `backends`, `judge_cost` and `scale` are its rows."""
