--- cfiam.resolve (placeholder until its issue lands)
return {}
