package ui

import "github.com/gin-gonic/gin"

// managePages registers the pages that change the appliance: policies,
// recovery points and restores, settings.
func (s *Server) managePages(g *gin.RouterGroup) {}
