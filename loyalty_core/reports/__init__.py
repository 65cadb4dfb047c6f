"""Finance reports: the points liability, its movements, breakage, aging and stores (issue 14, the finance part).

- `refresh.py`: the `reports` job that keeps the aggregates (report_* tables) from the ledger;
- `queries.py`: every query, named; `rows.py`: what the reports return (msgspec Structs);
- `finance.py`: the reports and the period a report is asked for; `export.py`: CSV for a spreadsheet.
The pages are back_office/reports.py; the definitions of each number are in docs/back-office.md.
"""
