ALTER TABLE "snapshots" DROP CONSTRAINT "snapshots_volume_type_id_volume_types_id_fk";
