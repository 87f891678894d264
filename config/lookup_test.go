package config

// The tests look pools up by name and ask which families a pool has; no
// product code does, so these two live with the tests.

// PoolByName returns the pool called name, or nil.
func (c *Config) PoolByName(name string) *Pool {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}

// Families says which IP families the pool has addresses in.
func (p *Pool) Families() (v4, v6 bool) {
	for _, r := range p.Ranges {
		if r.From().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}
