package ui

import "github.com/gin-gonic/gin"

// monitorPages registers the pages that show the appliance's state:
// VMs, jobs, storage, audit log, tape and replication.
func (s *Server) monitorPages(g *gin.RouterGroup) {}
